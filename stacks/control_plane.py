"""The control plane stack: table, dependency layer, API function and HTTP API, the agent endpoint.

Every function is built from one ``FunctionContext`` (``functions``): the
table, the settings, the code asset and the dependency layer they share.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from stacks.agent_artifact import AgentArtifact
from stacks.agent_endpoint import AgentEndpoint
from stacks.alerting import Alerting
from stacks.api import ApiFunction, HttpApiFrontend
from stacks.bundling import DependenciesLayer
from stacks.config import FUNCTIONS_DIR, ControlPlaneConfig
from stacks.consistency import ConsistencyChecker
from stacks.fleet import FleetMachinery
from stacks.functions import FunctionContext, functions_code
from stacks.monitoring import ControlPlaneAlarms, ControlPlaneDashboard
from stacks.reconciler import Reconciler
from stacks.scaler import Scaler
from stacks.storage import ControlPlaneTable


class ControlPlaneStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = ControlPlaneConfig.from_context(self)
        # The one topic every alarm notifies (and the operator subscribes to).
        self.alerting = Alerting(self, "Alerting", config=self.config.alerts)

        self.table = ControlPlaneTable(self, "Storage")
        self.layer = DependenciesLayer(self, "Dependencies", requirements=FUNCTIONS_DIR / "requirements.txt").layer
        # What every function shares, with one asset for the code of all of them.
        self.functions = FunctionContext(
            table=self.table, config=self.config, code=functions_code(), layers=[self.layer]
        )

        self.api_function = ApiFunction(self, "ApiFunction", context=self.functions)
        # The agents' heartbeats and config requests: a function URL, not API Gateway routes (but for
        # the LBVMs launched before it: stacks.api.LEGACY_AGENT_ROUTES).
        self.agent_endpoint = AgentEndpoint(self, "AgentEndpoint", context=self.functions)
        self.api = HttpApiFrontend(
            self,
            "Api",
            handler=self.api_function.function,
            agent_handler=self.agent_endpoint.function,
            config=self.config,
        )
        # The LBVM lifecycle and drain state machines, their tasks function and the LBVM role.
        self.fleet = FleetMachinery(
            self,
            "Fleet",
            context=self.functions,
            agent_function_arn=self.agent_endpoint.function.function_arn,
            api_id=self.api.http_api.api_id,
        )
        # The plan preview reads what the reconciler reads (and the same DNS settings).
        self.api_function.observe_fleet(self.fleet.fleet_config)
        self.scaler = Scaler(self, "Scaler", context=self.functions)
        self.agent_artifact = AgentArtifact(self, "AgentArtifact")
        self.agent_artifact.grant_read(self.fleet.lbvm_role.role)
        self.reconciler = Reconciler(
            self,
            "Reconciler",
            context=self.functions,
            fleet=self.fleet,
            agent_endpoint=self.agent_endpoint.url,
            agent_artifact_url=self.agent_artifact.url,
            alerting=self.alerting,
        )
        # The agent endpoint completes and keeps alive the lifecycle's callbacks.
        self.fleet.grant_callbacks(self.agent_endpoint.role)
        # The consistency checker; the API invokes it for on-demand runs and sweeps.
        self.consistency = ConsistencyChecker(
            self, "Consistency", context=self.functions, fleet=self.fleet, alerting=self.alerting
        )
        self.api_function.use_consistency_function(self.consistency.function.function)

        # Alarms that page (all on the topic) and the dashboard (docs/runbook.md says what to do).
        state_machines = {
            "lifecycle": self.fleet.lifecycle_state_machine,
            "drain": self.fleet.drain_state_machine,
        }
        self.alarms = ControlPlaneAlarms(
            self,
            "Alarms",
            alerting=self.alerting,
            reconciler=self.reconciler.function.function,
            worker=self.reconciler.worker.function,
            state_machines=state_machines,
        )
        self.dashboard = ControlPlaneDashboard(
            self,
            "Dashboard",
            functions={
                "api": self.api_function.function,
                "agent-endpoint": self.agent_endpoint.function,
                "reconciler": self.reconciler.function.function,
                "reconcile-worker": self.reconciler.worker.function,
                "scaler": self.scaler.function.function,
                "lifecycle-tasks": self.fleet.tasks.function,
                "consistency": self.consistency.function.function,
            },
            state_machines=state_machines,
            reconciler=self.reconciler.function.function,
            alarms=self.alerting.alarms,
        )

        CfnOutput(self, "ApiUrl", value=self.api.url, description="Base URL of the HTTP API (SigV4)")
        CfnOutput(
            self,
            "AgentEndpointUrl",
            value=self.agent_endpoint.url,
            description="The LBVM agents' endpoint: a Lambda function URL (SigV4 for lambda, instance role only)",
        )
        CfnOutput(self, "TableName", value=self.table.table.table_name, description="DynamoDB table")
