"""Traffic routers: one file per `trafficRouting` kind, the Router Protocol (router.py) and the
registry that picks one (registry.py)."""
