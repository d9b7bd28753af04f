"""Who is calling (`tokens`: bearer JWTs) and what they may do (`policy`: the one decision point,
OPA with the Rego policies of `serving_api/policies/`)."""
