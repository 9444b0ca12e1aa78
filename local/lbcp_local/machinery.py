"""Deploy the fleet machinery into the emulated account: the tasks function and the two state machines.

What the CDK stack deploys in AWS (``stacks/fleet.py``), made with plain API
calls against moto: an execution role, the lifecycle tasks function (its code
runs in this process through ``lambda_bridge``, so the deployed package is a
placeholder), the LBVM instance profile, and the state machines from the very
ASL files the stack loads. Idempotent: a second call updates the definitions
and returns the same ARNs.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError

from lbcp.lifecycle.protocol import DRAIN_STATE_MACHINE_FILE, LIFECYCLE_STATE_MACHINE_FILE
from lbcp.settings import (
    ENV_DRAIN_STATE_MACHINE_ARN,
    ENV_INSTANCE_PROFILE_ARN,
    ENV_LIFECYCLE_STATE_MACHINE_ARN,
    ENV_TASKS_FUNCTION_ARN,
)

STATEMACHINES_DIR: Final = Path(__file__).resolve().parents[2] / "statemachines"
TASKS_HANDLER: Final = "handlers.lifecycle_tasks.lambda_handler"
CONSISTENCY_HANDLER: Final = "handlers.consistency.lambda_handler"
_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com", "ec2.amazonaws.com"]},
            "Action": "sts:AssumeRole",
        }
    ],
}


@dataclass(frozen=True)
class FleetMachinery:
    tasks_function_arn: str
    lifecycle_state_machine_arn: str
    drain_state_machine_arn: str
    instance_profile_arn: str

    def environment(self) -> dict[str, str]:
        """The settings (``lbcp.settings``) that point the functions at this machinery."""
        return {
            ENV_TASKS_FUNCTION_ARN: self.tasks_function_arn,
            ENV_LIFECYCLE_STATE_MACHINE_ARN: self.lifecycle_state_machine_arn,
            ENV_DRAIN_STATE_MACHINE_ARN: self.drain_state_machine_arn,
            ENV_INSTANCE_PROFILE_ARN: self.instance_profile_arn,
        }


def definition(file_name: str) -> str:
    return (STATEMACHINES_DIR / file_name).read_text(encoding="utf-8")


def _placeholder_package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "lbcp local: the handler runs in-process (lbcp_local.lambda_bridge)\n")
    return buffer.getvalue()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _role(iam: Any, name: str) -> str:
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
    return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(_TRUST))["Role"]["Arn"])


def _instance_profile(iam: Any, name: str, role_name: str) -> str:
    try:
        return str(iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Arn"])
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
    profile = iam.create_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role_name)
    return str(profile["Arn"])


def _function(lambda_client: Any, name: str, role_arn: str, handler: str = TASKS_HANDLER) -> str:
    try:
        return str(lambda_client.get_function(FunctionName=name)["Configuration"]["FunctionArn"])
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
    created = lambda_client.create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role_arn,
        Handler=handler,
        Code={"ZipFile": _placeholder_package()},
        Timeout=30,
        MemorySize=512,
    )
    return str(created["FunctionArn"])


def _state_machine(sfn: Any, name: str, body: str, role_arn: str) -> str:
    for page in sfn.get_paginator("list_state_machines").paginate():
        for machine in page.get("stateMachines", []):
            if machine["name"] == name:
                sfn.update_state_machine(stateMachineArn=machine["stateMachineArn"], definition=body)
                return str(machine["stateMachineArn"])
    return str(sfn.create_state_machine(name=name, definition=body, roleArn=role_arn)["stateMachineArn"])


def deploy_fleet_machinery(*, iam: Any, lambda_client: Any, sfn: Any, prefix: str = "lbcp-local") -> FleetMachinery:
    role_name = f"{prefix}-fleet"
    role_arn = _role(iam, role_name)
    return FleetMachinery(
        tasks_function_arn=_function(lambda_client, f"{prefix}-lifecycle-tasks", role_arn),
        drain_state_machine_arn=_state_machine(
            sfn, f"{prefix}-lbvm-drain", definition(DRAIN_STATE_MACHINE_FILE), role_arn
        ),
        lifecycle_state_machine_arn=_state_machine(
            sfn, f"{prefix}-lbvm-lifecycle", definition(LIFECYCLE_STATE_MACHINE_FILE), role_arn
        ),
        instance_profile_arn=_instance_profile(iam, f"{prefix}-lbvm", role_name),
    )


def deploy_consistency_function(*, iam: Any, lambda_client: Any, prefix: str = "lbcp-local") -> str:
    """The consistency checker's function (the API invokes it for dry runs and sweeps); returns its ARN."""
    return _function(lambda_client, f"{prefix}-consistency", _role(iam, f"{prefix}-fleet"), CONSISTENCY_HANDLER)
