"""Paired image-to-image training with composite synthesis losses (as TP-GAN, Huang et al. 2017,
"Beyond Face Rotation": L = L_pixel + l1 L_sym + l2 L_adv + l3 L_ip + l4 L_tv), plus a
perceptual term (Johnson et al. 2016). Every term is a pure function of synthesis_losses.py:

    G:  pixel_weight L_pixel(G(x), y)          (pixel: l1 or l2)
      + sym_weight   L_sym(G(x))               (mean |G(x) - flip_lr(G(x))|)
      + adv_weight   L_adv                     (pix2pix's conditional PatchGAN term on (x, G(x)))
      + ip_weight    L_ip(f; G(x), y)          (features of a fixed network at ip_layers)
      + tv_weight    L_tv(G(x))                (anisotropic total variation, per-pixel mean)
      + perceptual_weight L_perc(f'; G(x), y)  (squared feature distance at perceptual_layers)
    D:  pix2pix's (loss of D(x, y) as real + loss of D(x, G(x)) as fake) / 2

A weight of 0 turns its term off (not computed; with adv_weight 0 D is not trained either).
The fixed network f: `feature_net` "auto" is the shipped classifier of the data's source
(metrics/classifier.py; its layer "body" is the penultimate 128-d feature vector), or a
classifier name or .safetensors path. The perceptual network f' is that classifier
(perceptual_net classifier, layers body.0 .. body.3 by default: its four conv blocks) or a
VGG16 loaded from `vgg16_weights` (a torchvision-format state dict; layers relu1_2, relu2_2,
relu3_3 by default). Fixed networks are frozen and not checkpointed (they come from their files).

One step, as pix2pix: G translates the batch; D takes one step; G takes one step on the
composite loss against the updated D. Data, direction, sampler: as pix2pix (methods/pix2pix.py).
Logged: d_loss, g_loss, and each active term unweighted (pixel, sym, adv, ip, tv, perceptual).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from gankit.data.base import DataSource
from gankit.errors import ConfigError
from gankit.methods.base import Method
from gankit.methods.options import METHOD_OPTIONS, at_least, method_options
from gankit.methods.pix2pix import Pix2PixMethod
from gankit.methods.translation import (
    check_recipe,
)
from gankit.models.classifier import load_classifier, source_classifier
from gankit.schema import RunConfig
from gankit.synthesis_losses import (
    FixedFeatures,
    identity_loss,
    perceptual_loss,
    pixel_l1,
    pixel_l2,
    symmetry_loss,
    total_variation,
    vgg16_features,
)

CLASSIFIER_PERCEPTUAL_LAYERS = ("body.0", "body.1", "body.2", "body.3")
VGG_PERCEPTUAL_LAYERS = ("relu1_2", "relu2_2", "relu3_3")


def fixed_classifier(cfg, feature_net: str, layers, device) -> FixedFeatures:
    name = source_classifier(cfg.data) if feature_net == "auto" else feature_net
    if name is None:
        raise ConfigError(
            "method_options.feature_net: no shipped classifier for this data; give a classifier "
            "name or .safetensors path"
        )
    return FixedFeatures(load_classifier(name).to(device), list(layers))


class CompositeMethod(Pix2PixMethod):
    """Pix2pix's players and step with the composite generator loss (module docstring)."""

    name = "composite"

    def __init__(self, cfg: RunConfig, data: DataSource, device: torch.device):
        Method.__init__(self, cfg, data, device)  # not pix2pix's: its options differ
        self.opts = opts = method_options(cfg)
        self.build_players(cfg, data, device)
        self.pixel_fn = pixel_l1 if opts["pixel"] == "l1" else pixel_l2
        self.ip_net = self.perceptual_net = None
        if opts["ip_weight"] > 0:
            self.ip_net = fixed_classifier(cfg, opts["feature_net"], opts["ip_layers"], device)
        if opts["perceptual_weight"] > 0:
            if opts["perceptual_net"] == "vgg16":
                layers = opts["perceptual_layers"] or VGG_PERCEPTUAL_LAYERS
                self.perceptual_net = vgg16_features(opts["vgg16_weights"], layers).to(device)
            else:
                layers = opts["perceptual_layers"] or CLASSIFIER_PERCEPTUAL_LAYERS
                self.perceptual_net = fixed_classifier(cfg, opts["feature_net"], layers, device)

    def generator_terms(self, x: Tensor, fake: Tensor, y: Tensor, step: int) -> dict[str, Tensor]:
        """The unweighted active terms of G's loss."""
        o = self.opts
        terms = {"pixel": self.pixel_fn(fake, y)}
        if o["sym_weight"] > 0:
            terms["sym"] = symmetry_loss(fake)
        if o["adv_weight"] > 0:
            terms["adv"] = self.adversarial_loss(x, fake, step)
        if o["ip_weight"] > 0:
            terms["ip"] = identity_loss(self.ip_net, fake, y, o["ip_distance"])
        if o["tv_weight"] > 0:
            terms["tv"] = total_variation(fake)
        if o["perceptual_weight"] > 0:
            terms["perceptual"] = perceptual_loss(self.perceptual_net, fake, y)
        return terms

    def train_step(self, step: int) -> dict[str, Tensor]:
        G, fast, o = self.generator.net, self.fast, self.opts
        x, y, _ = self.data.batch_pairs(self.batch_size)
        if self.reverse:
            x, y = y, x
        logs: dict[str, Tensor] = {}
        with fast.autocast():
            fake = G(x)
        d_loss = torch.zeros((), device=self.device)
        if o["adv_weight"] > 0:
            d_loss = self.discriminator_step(x, y, fake, step, logs)
        with self.critic.frozen():
            with fast.autocast():
                terms = self.generator_terms(x, fake, y, step)
                g_loss = sum(o[f"{k}_weight"] * v for k, v in terms.items())
                if o["adv_weight"] > 0:
                    g_loss = self.g_terms(g_loss, step, logs)
            self.g_player.update(g_loss, logs, self.collect_stats)
            self.critic.after_generator_step()
        logs.update(d_loss=d_loss.detach(), g_loss=g_loss.detach())
        logs.update({k: v.detach() for k, v in terms.items()})
        return logs


@METHOD_OPTIONS.register("composite")
def composite_options(
    cfg,
    pixel: Literal["l1", "l2"] = "l1",
    pixel_weight: float = 1.0,
    sym_weight: float = 0.3,
    adv_weight: float = 1e-3,
    ip_weight: float = 3e-3,
    tv_weight: float = 1e-4,
    perceptual_weight: float = 0.0,
    feature_net: str = "auto",
    ip_layers: list[str] = ["body"],  # noqa: B006 - read only
    ip_distance: Literal["l1", "l2"] = "l1",
    perceptual_net: Literal["classifier", "vgg16"] = "classifier",
    perceptual_layers: list[str] | None = None,
    vgg16_weights: str | None = None,
    direction: Literal["AtoB", "BtoA"] = "AtoB",
) -> None:
    """Weights of L = pixel_weight L_pixel + sym_weight L_sym + adv_weight L_adv + ip_weight L_ip
    + tv_weight L_tv + perceptual_weight L_perc (defaults: TP-GAN's 1, 0.3, 1e-3, 3e-3, 1e-4;
    0 turns a term off); pixel: l1 or l2; feature_net: the fixed classifier of L_ip (and of
    L_perc with perceptual_net classifier), "auto" the shipped one of the data; ip_layers,
    ip_distance: its layers and distance; perceptual_layers: module names (classifier) or
    VGG16 layer names (relu1_2 ...); vgg16_weights: a torchvision-format VGG16 state dict;
    direction: as pix2pix."""
    for key, value in (
        ("pixel_weight", pixel_weight),
        ("sym_weight", sym_weight),
        ("adv_weight", adv_weight),
        ("ip_weight", ip_weight),
        ("tv_weight", tv_weight),
        ("perceptual_weight", perceptual_weight),
    ):
        at_least(value, 0.0, key)
    if perceptual_weight > 0 and perceptual_net == "vgg16" and not vgg16_weights:
        raise ConfigError(
            "method_options.vgg16_weights: perceptual_net vgg16 needs the path of a "
            "torchvision-format VGG16 state dict (gankit downloads nothing)"
        )
    if not ip_layers:
        raise ConfigError("method_options.ip_layers: name at least one layer")
    check_recipe(cfg, "composite")
    if adv_weight == 0 and (cfg.tricks or cfg.regularizers):
        raise ConfigError(
            "tricks, regularizers: method_options.adv_weight is 0, so composite trains no "
            "discriminator for them to attach to; remove them or set adv_weight > 0"
        )
    if cfg.data["name"] != "transformed" or not cfg.data.get("paired"):
        raise ConfigError(
            "data: composite needs paired data: {name: transformed, paired: true, ...}"
        )
