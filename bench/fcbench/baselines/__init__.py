"""What fastconv is compared against: ``naive`` (a Python loop over output positions),
``numpy_best`` (im2col + one BLAS matmul), ``pytorch`` (ops and models) and ``keras_tf``."""
