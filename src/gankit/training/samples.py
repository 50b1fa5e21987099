"""Sample pictures: the sampling generator (the EMA copy when kept) on fixed noise, written to
RUN_DIR/samples/step_N.png (and TensorBoard) every logging.sample_every steps."""

from __future__ import annotations

from pathlib import Path

import torch

from gankit.models.latent import sample_latent
from gankit.training.events import Part
from gankit.training.outputs import save_samples

N_POINTS_2D = 2500  # PacGAN's sample count for the 2D mixtures


class SampleWriter(Part):
    def __init__(self, trainer):
        self.trainer = trainer
        cfg = trainer.cfg
        noise_gen = torch.Generator(device=trainer.device).manual_seed(cfg.seed + 2)
        self.points = tuple(trainer.data.shape) == (2,)
        self.fixed_noise = sample_latent(
            N_POINTS_2D if self.points else cfg.logging.n_samples,
            cfg.generator["latent_dim"],
            cfg.generator["latent_dist"],
            trainer.device,
            noise_gen,
        )

    def on_sample_step(self) -> None:
        if self.trainer.dist.is_main:  # only rank 0 writes files
            self.write()

    @torch.no_grad()
    def write(self) -> Path:
        t = self.trainer
        G = t.sample_generator()
        was_training = G.training
        G.eval()
        grid = getattr(G, "sample_grid", None)  # image-to-image: (source, translation) pairs
        samples = G(self.fixed_noise) if grid is None else grid(self.fixed_noise)
        G.train(was_training)
        real = t.data.reference(N_POINTS_2D) if self.points else None
        path = save_samples(
            samples, t.folder.samples / f"step_{t.step:08d}.png", real, f"step {t.step}"
        )
        t.log.image(t.step, "samples", path)
        return path
