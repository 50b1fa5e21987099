"""CycleGAN's image history pool (Shrivastava et al. 2017) against a hand simulation."""

import torch

from gankit.methods.cyclegan import ImagePool


def images(values):
    """One 1x1x1 image per value, so an image is identified by its value."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1)


def simulate(size, seed, stream):
    """The pool's rule written out with a list and the same generator draws."""
    g = torch.Generator().manual_seed(seed)
    pool, out = [], []
    for v in stream:
        if len(pool) < size:
            pool.append(v)
            out.append(v)
        elif torch.rand((), generator=g).item() > 0.5:
            j = int(torch.randint(size, (), generator=g))
            out.append(pool[j])
            pool[j] = v
        else:
            out.append(v)
    return out, pool


def test_fills_first_then_returns_the_new_images_unchanged():
    pool = ImagePool(4, seed=0)
    assert pool.query(images([1, 2, 3])).flatten().tolist() == [1, 2, 3]
    assert pool.count == 3
    assert pool.query(images([4])).flatten().tolist() == [4]
    assert pool.images.flatten().tolist() == [1, 2, 3, 4]


def test_matches_a_hand_simulation_over_many_batches():
    stream = list(range(1, 201))
    expected, expected_pool = simulate(5, 7, stream)
    pool = ImagePool(5, seed=7)
    got = []
    for start in range(0, 200, 8):  # batches of 8, filled and drawn image by image
        got += pool.query(images(stream[start : start + 8])).flatten().tolist()
    assert got == expected
    assert pool.images.flatten().tolist() == expected_pool
    # history was returned, and each returned old image left the pool (replaced by a new one)
    old = [(i, v) for i, v in enumerate(got) if v != stream[i]]
    assert old
    for i, v in old:
        assert v < stream[i]
    returned = [v for _, v in old]
    assert len(set(returned)) == len(returned)  # an image comes back out at most once
    assert not set(returned) & set(pool.images.flatten().tolist())


def test_returns_history_with_probability_one_half_once_full():
    pool = ImagePool(10, seed=3)
    pool.query(images(list(range(10))))
    n = 4000
    out = pool.query(images(list(range(100, 100 + n)))).flatten()
    from_history = (out != torch.arange(100, 100 + n, dtype=torch.float32)).float().mean()
    # binomial(4000, 0.5): standard deviation 0.0079; 4 sd
    assert abs(from_history.item() - 0.5) < 0.032


def test_size_zero_is_no_pool_and_state_resumes_exactly():
    x = images([5, 6])
    assert torch.equal(ImagePool(0, seed=0).query(x), x)
    a = ImagePool(3, seed=1)
    a.query(images(list(range(6))))
    b = ImagePool(3, seed=99)
    b.load_state_dict(a.state_dict())
    nxt = images(list(range(10, 30)))
    assert torch.equal(a.query(nxt), b.query(nxt))
    assert torch.equal(a.images, b.images)
