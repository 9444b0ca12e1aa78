"""The agent's artifact: what an LBVM's user data downloads and installs.

Built at synth time without Docker (``agent.package.build_artifact``: the agent,
the lbcp models it shares with the control plane, and their dependencies for
Amazon Linux 2023's Python) and uploaded as an S3 asset; the reconciler puts
its URL into every LBVM's user data, and the LBVM role may read it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Final

import jsii
from aws_cdk import AssetHashType, BundlingOptions, BundlingOutput, DockerImage, ILocalBundling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

REPOSITORY: Final = Path(__file__).resolve().parents[1]
ARTIFACT_NAME: Final = "lbcp-agent.tar.gz"


@jsii.implements(ILocalBundling)
class AgentArtifactBundler:
    def try_bundle(self, output_dir: str, *_options: Any, **_kw_options: Any) -> bool:
        from agent.package import build_artifact

        build_artifact(Path(output_dir) / ARTIFACT_NAME)
        return True


class AgentArtifact(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.asset = s3_assets.Asset(
            self,
            "Asset",
            path=str(REPOSITORY / "agent"),
            # The artifact also carries functions/lbcp: hash both, so a change to either rebuilds it.
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=_tree_hash(REPOSITORY / "agent", REPOSITORY / "functions" / "lbcp"),
            bundling=BundlingOptions(
                # Never pulled: local bundling either succeeds or raises.
                image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.11"),
                local=AgentArtifactBundler(),
                output_type=BundlingOutput.SINGLE_FILE,
            ),
        )

    @property
    def url(self) -> str:
        return self.asset.s3_object_url

    def grant_read(self, role: iam.IRole) -> None:
        # Exactly this object (Asset.grant_read would add s3:GetObject*, GetBucket* and List*).
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DownloadAgentArtifact",
                actions=["s3:GetObject"],
                resources=[self.asset.bucket.arn_for_objects(self.asset.s3_object_key)],
            )
        )


def _tree_hash(*roots: Path) -> str:
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            digest.update(path.relative_to(REPOSITORY).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
