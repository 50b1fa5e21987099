"""Warnings when training looks collapsed or diverging, judged from each log step's values.

Two kinds, each a heuristic that reads numbers the trainer already logs:

- `discriminator_wins`: D separates real from fake so well that G's gradient carries little
  information. With logit scores (minimax, non-saturating): p_real > 0.99 and p_fake < 0.01 at
  STREAK consecutive log steps. Other objectives (least squares, hinge, Wasserstein) have no
  probability scale, so there the scale-free `d_separation` is used: (mean D(x) - mean D(G(z)))
  over the pooled standard deviation of the scores above SEPARATION_HIGH at STREAK consecutive
  log steps (healthy ring8 runs stay below 2; a frozen generator reaches 15 to 200).
- `low_diversity`: the mean pairwise distance of a fixed-noise batch of generated samples, over
  the same statistic of real data (`diversity`), is below DIVERSITY_FLOOR at STREAK
  consecutive log steps: the samples have collapsed toward a few points. Judged only after
  the first WARMUP log steps: a freshly initialized generator maps every z near one point
  (a small DCGAN starts at 0.003) and spreads out during its first steps.

A kind is not warned again within COOLDOWN log steps. The state is small and JSON-able; it is
kept in checkpoints so a resumed run warns exactly as an uninterrupted one.
"""

from __future__ import annotations

STREAK = 3  # consecutive log steps a condition must hold
P_HIGH, P_LOW = 0.99, 0.01
SEPARATION_HIGH = 5.0  # standard deviations between real and fake scores
DIVERSITY_FLOOR = 0.1
WARMUP = 10  # log steps before diversity is judged
COOLDOWN = 10  # log steps between two warnings of the same kind


class Watchdog:
    def __init__(self, every: int):
        self.every = every  # steps between log steps
        self.wins = 0  # consecutive log steps on which D wins outright
        self.low = 0  # consecutive log steps with diversity < DIVERSITY_FLOOR
        self.warned: dict[str, int] = {}  # kind -> step of its last warning

    def check(self, step: int, values: dict[str, float]) -> list[tuple[str, str]]:
        """(kind, message) for each warning due at this log step."""
        due = []
        if "p_real" in values and "p_fake" in values:
            p_real, p_fake = values["p_real"], values["p_fake"]
            self.wins = self.wins + 1 if p_real > P_HIGH and p_fake < P_LOW else 0
            if self.wins >= STREAK:
                due.append((
                    "discriminator_wins",
                    f"the discriminator wins outright at step {step}: mean D(x) = {p_real:.4f}, "
                    f"mean D(G(z)) = {p_fake:.4f} for {self.wins} log steps in a row; the "
                    "generator gets almost no gradient. Try a lower D learning rate, label "
                    "smoothing, instance noise or a gradient penalty.",
                ))  # fmt: skip
        elif "d_separation" in values:
            sep = values["d_separation"]
            self.wins = self.wins + 1 if sep > SEPARATION_HIGH else 0
            if self.wins >= STREAK:
                due.append((
                    "discriminator_wins",
                    f"the discriminator wins outright at step {step}: its scores of real and "
                    f"fake samples are {sep:.1f} standard deviations apart (above "
                    f"{SEPARATION_HIGH:g} for {self.wins} log steps in a row). Try a lower D "
                    "learning rate or a regularizer (gradient penalty, R1, instance noise).",
                ))  # fmt: skip
        if "diversity" in values and step > WARMUP * self.every:
            diversity = values["diversity"]
            self.low = self.low + 1 if diversity < DIVERSITY_FLOOR else 0
            if self.low >= STREAK:
                due.append((
                    "low_diversity",
                    f"sample diversity dropped at step {step}: generated samples are "
                    f"{diversity:.3f} x as far apart as real ones (below {DIVERSITY_FLOOR} for "
                    f"{self.low} log steps in a row); the generator may have collapsed.",
                ))  # fmt: skip
        out = []
        for kind, message in due:
            last = self.warned.get(kind)
            if last is None or step - last >= COOLDOWN * self.every:
                self.warned[kind] = step
                out.append((kind, message))
        return out

    def state_dict(self) -> dict:
        return {"wins": self.wins, "low": self.low, "warned": dict(self.warned)}

    def load_state_dict(self, state: dict) -> None:
        self.wins = int(state.get("wins", 0))
        self.low = int(state.get("low", 0))
        self.warned = {k: int(v) for k, v in state.get("warned", {}).items()}
