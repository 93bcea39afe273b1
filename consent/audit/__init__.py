# Copyright 2026 The consent authors
# SPDX-License-Identifier: Apache-2.0
"""Tamper-evident audit log: RFC 6962 Merkle tree, C2SP checkpoints, proofs, leaf encoding.

The modules ``merkle``, ``checkpoint``, ``proof_format`` and ``verify_offline`` are pure and need
only the standard library and ``cryptography``, so auditors can run them anywhere. ``leaf`` adds
``msgspec``. Nothing here touches a database or the network; import the submodules directly.
"""
