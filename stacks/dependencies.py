"""``DependsOn`` on a role's policies, not on the role itself.

The Lambda and Step Functions L2s make the function (state machine) depend on
its whole role construct: the role's policies (wanted: nothing may run before
it may write its logs) and the role itself, which the ``Role`` GetAtt orders
already, so cfn-lint reports it (W3005). ``depend_on_policies_not_role``
replaces the resource's ``DependsOn`` with the list minus the role, produced
at resolve time, after CDK has turned every construct dependency into
``DependsOn``, so no other dependency is lost.
"""

from __future__ import annotations

import jsii
from aws_cdk import CfnResource, IListProducer, IResolveContext, Lazy, Stack
from aws_cdk import aws_iam as iam
from constructs import IConstruct


def depend_on_policies_not_role(construct: IConstruct, role: iam.Role) -> None:
    """Drop ``role`` from the ``DependsOn`` of ``construct``'s CloudFormation resource."""
    resource = construct.node.default_child
    assert isinstance(resource, CfnResource), f"{construct.node.path} has no CloudFormation resource"
    resource.add_override("DependsOn", Lazy.uncached_list(DependsOnWithoutRole(resource, role)))


@jsii.implements(IListProducer)
class DependsOnWithoutRole:
    """A resource's ``DependsOn`` minus its role (see the module's docstring)."""

    def __init__(self, resource: CfnResource, role: iam.Role) -> None:
        role_resource = role.node.default_child
        assert isinstance(role_resource, CfnResource)
        self._resource = resource
        self._role_path = role_resource.node.path

    def produce(self, context: IResolveContext) -> list[str] | None:
        keep = [
            dep
            for dep in self._resource.obtain_dependencies()
            if isinstance(dep, CfnResource) and dep.node.path != self._role_path
        ]
        if not keep:
            return None
        stack = Stack.of(self._resource)
        return [stack.get_logical_id(dep) for dep in sorted(keep, key=lambda dep: dep.node.path)]
