"""``python -m nlc.train_latent``, the name the training records in ``trained/*.json`` use: the code is
:mod:`nlc.train.latent` (``python -m nlc.train.latent``)."""

from .train.latent import main

if __name__ == "__main__":
    main()
