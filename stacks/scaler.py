"""The scaler: a function run every minute by an EventBridge rule (DESIGN 2.5).

It reads every load balancer (the table's ``byKind`` index), their agents'
metrics (the LBVM records, where heartbeats leave them: one ``Query`` of each
load balancer's partition) and their scalers' memory items (BatchGetItem),
and writes each memory item (PutItem) and, on decisions, desired capacity and
an event (one conditional transaction, or an UpdateItem when there is no event). No CloudWatch
permission: it reads no metric from CloudWatch.
Nothing else: the reconciler converges the fleet to what it wrote.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Duration
from constructs import Construct

from lbcp.models.app_metrics import SERVICE_SCALER
from stacks.functions import FunctionContext, LbcpFunction
from stacks.schedule import every_minute
from stacks.storage import BATCH_READ_ACTIONS, INDEX_QUERY_ACTIONS, RECORD_UPDATE_ACTIONS

SCALER_HANDLER: Final = "handlers.scaler.lambda_handler"
SCALER_SERVICE_NAME: Final = SERVICE_SCALER


class ScalerFunction(LbcpFunction):
    """The scaler's function and its least-privilege role."""

    def __init__(self, scope: Construct, construct_id: str, *, context: FunctionContext) -> None:
        super().__init__(
            scope,
            construct_id,
            context=context,
            description="lbcp scaler: decides each load balancer's desired capacity from its metrics",
            handler=SCALER_HANDLER,
            service_name=SCALER_SERVICE_NAME,
            # A run must end before the next tick starts one more (conditional
            # writes keep two runs safe, but they would only waste work).
            timeout=Duration.seconds(50),
        )
        # Read records (and re-read one after a lost conditional write), list them
        # by kind, and the two writes of ``set_desired_capacity``'s transaction.
        self.add_to_role_policy(context.table.items_statement(RECORD_UPDATE_ACTIONS))
        self.add_to_role_policy(context.table.index_query_statement(sid="ListLoadBalancers"))
        # The LBVM records of one load balancer (its partition): the agents' metrics samples.
        self.add_to_role_policy(context.table.items_statement(INDEX_QUERY_ACTIONS, sid="ReadAgentMetrics"))
        # Every load balancer's memory item, 100 a call.
        self.add_to_role_policy(context.table.items_statement(BATCH_READ_ACTIONS, sid="ReadScalerMemory"))


class Scaler(Construct):
    """The scaler function and the rule that runs it every minute."""

    def __init__(self, scope: Construct, construct_id: str, *, context: FunctionContext) -> None:
        super().__init__(scope, construct_id)
        self.function = ScalerFunction(self, "Function", context=context)
        self.rule = every_minute(
            self, "EveryMinute", function=self.function.function, description="Run the lbcp scaler"
        )
