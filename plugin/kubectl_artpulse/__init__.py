"""``kubectl artpulse``: the kubectl plugin to watch, gate on and steer ArtPulseModel rollouts.

A distribution of its own (``plugin/pyproject.toml``), standard library only: it talks to the
cluster through ``kubectl`` itself (``kubectl_artpulse.kubectl``), so kubeconfig, contexts and
exec credential plugins work as they do for kubectl. ``make plugin-dist`` packs it into one
executable zipapp (``plugin/build_dist.py``). The entry point is ``kubectl_artpulse.cli:main``.
"""

__version__ = "0.1.0"
