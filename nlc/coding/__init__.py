"""The coding layer: the only place where floats become quantized probabilities.

* :mod:`nlc.coding.coders` wraps constriction's ANS stack and range-coder queue
  behind one small interface.
* :mod:`nlc.coding.logistic_mixture` turns discretized logistic mixture
  parameters into 256-bin probability tables.
* :mod:`nlc.coding.autoregressive` codes tiled images pixel by pixel with a
  model's incremental stepper.
* :mod:`nlc.coding.bitsback` composes push/pop codecs on the ANS stack into
  bits-back coding for latent-variable models (BB-ANS, Bit-Swap, VRNN) and
  chains items so that the initial bits are paid once per file.
* :mod:`nlc.coding.planes` codes the planes no model was trained for (alpha,
  palette indices, 1-bit) with a classical fallback.
"""
