"""``python -m nlc.train``: train a photo codec (:func:`nlc.train.main`)."""

from . import main

main()
