"""lbcp: the control plane for self-managed load-balancer fleets.

The package is the Lambda functions' shared core. Layout:

- ``models``: plain pydantic models (spec, status, events, the stored record).
- ``logic``: pure functions over the models, with time passed in.
- ``dal``: DynamoDB storage behind a small repository.
- ``adapters``: the other AWS calls (EC2, ACM) behind small interfaces.
- ``api``: the HTTP API (Powertools event handler), problem+json errors, OpenAPI.
"""

__version__ = "0.1.0"

PRODUCT_TAG_KEY = "lbcp:product"
PRODUCT_TAG_VALUE = "lbcp"
LB_ID_TAG_KEY = "lbcp:load-balancer-id"
LBVM_ID_TAG_KEY = "lbcp:lbvm-id"
