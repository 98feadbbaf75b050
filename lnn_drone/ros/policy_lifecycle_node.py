"""Managed (lifecycle) policy node for onboard use: ``configure`` loads the model and builds the
graph (a bad model fails the transition, the node stays unconfigured), ``activate`` starts
publishing commands, ``deactivate`` stops them, ``cleanup`` unloads. Same parameters as
``policy_node``."""
from __future__ import annotations

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from .node_config import PolicyNodeConfig
from .params import ConfigGuard, declare_config
from .scheduling import schedule_node
from .policy_node import PolicyGraph


class PolicyLifecycleNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("policy", **kwargs)
        self.cfg = declare_config(self, PolicyNodeConfig)
        schedule_node(self, self.cfg.realtime_priority)
        self.graph: PolicyGraph | None = None
        self.guard = ConfigGuard(self, self.cfg, self._apply)

    def _apply(self, changes, candidate):
        if self.graph is None:
            self.cfg = candidate
            return None
        return self.graph.apply(changes, candidate)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.graph = PolicyGraph(self, self.guard.config, lifecycle=True)
            self.graph.set_internals(self.guard.config.publish_internals)
        except Exception as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.graph.active = True
        self.graph.core.controller.reset()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.graph.active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.graph is not None:
            self.graph.destroy()
            self.graph = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.on_cleanup(state)


def main(args=None) -> int:
    from .node_main import run_node

    return run_node("policy_lifecycle_node", PolicyLifecycleNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
