"""The contract: loading the OpenAPI document and the config/scenario schemas, validating
requests against them, and generating data from them. Every rule lives in ``contracts/``."""
