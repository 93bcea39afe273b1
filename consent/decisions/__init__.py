"""Policy decisions: the Rego policy bundle, the engines that evaluate it and its test runner.

`consent.decisions.engine` holds the engines (`open_engine`, `InProcessOpaEngine`,
`OpaServerEngine`, `CachedPolicyEngine`); `consent.decisions.policy_tests` runs the policy tests
(`consent policy test`).
"""
