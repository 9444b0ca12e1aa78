"""The CDK app of the lbcp control plane (see ``stacks.application``)."""
