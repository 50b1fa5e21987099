"""Evaluation during training (eval.every): the sampling generator scored with eval.metrics,
logged as eval/NAME, and RUN_DIR/best kept for the best eval.best score so far."""

from __future__ import annotations

from gankit.metrics.evaluate import N_POINTS_2D, compute_metrics, score_direction
from gankit.training.events import Part


class PeriodicEval(Part):
    """gankit.train adds it to a run with eval.every set (it lives with the metrics, above the
    training layer, and reaches the trainer as a part)."""

    evaluates = True

    def __init__(self):
        self.best: float | None = None  # best eval.best score so far

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = state.get("best")

    def on_eval_step(self) -> None:
        self.evaluate()

    def evaluate(self) -> dict:
        """Score the sampling generator; keep RUN_DIR/best when `eval.best` improved."""
        t = self.trainer
        ev, g_cfg = t.cfg.eval, t.cfg.generator
        n_fake = ev.n_fake or (N_POINTS_2D if tuple(t.data.shape) == (2,) else 2000)

        def score() -> dict:
            return compute_metrics(
                t.sample_generator(),
                (g_cfg["latent_dim"], g_cfg["latent_dist"]),
                t.cfg.data,
                ev.metrics,
                n_fake,
                ev.ref_split,
                ev.extractor,
                seed=t.cfg.seed,
                device=t.device,
                progress=False,
            )

        result = t.dist.on_main(score)  # rank 0 evaluates, the others wait for its scores
        scores = {f"eval/{k}": float(v) for k, v in result["metrics"].items()}
        t.log.scalars(t.step, scores)
        if ev.best:
            value = result["metrics"][ev.best]
            lower = score_direction(ev.best) == "lower"
            if self.best is None or (value < self.best if lower else value > self.best):
                self.best = float(value)
                t.checkpoints.save_best({"best": {ev.best: self.best}, "eval": result})
        return result
