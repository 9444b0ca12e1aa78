"""The API's routes, one module per resource; each registers its handlers on the resolver when imported."""
