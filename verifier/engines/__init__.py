"""The engines that run the model: ``encode`` (Z3, every packet at once), ``tracer`` (one concrete packet
through one node) and ``replay`` (one concrete packet through the cluster, backing ``kspec trace`` and the
replay of every counterexample). The third engine, the kernel, is ``kspec.lab``."""
