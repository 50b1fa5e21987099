"""Small experiments that show why GAN training is hard, each a figure (`gankit demo NAME`).

xy-game: gradient play on min_x max_y xy circles or spirals out (Salimans et al. 2016);
divergences: JS is stuck at log 2 while W1 grows with the distance (Arjovsky et al. 2017);
optimal-d: a trained discriminator against D*(x) = p_data / (p_data + p_g) (Goodfellow et al.
2014, Prop. 1). Each module has the computation (tested) and a `figure(path)` that plots it.
"""

DEMOS = {
    "xy-game": "gankit.demos.xy_game",
    "divergences": "gankit.demos.divergences",
    "optimal-d": "gankit.demos.optimal_d",
}
