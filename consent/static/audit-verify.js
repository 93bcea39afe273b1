// Copyright 2026 The consent authors
// SPDX-License-Identifier: Apache-2.0
//
// Offline verifier for consent audit proofs: C2SP signed-note (Ed25519), tlog-checkpoint,
// c2sp.org/tlog-proof@v1 and RFC 6962 inclusion. Plain JavaScript, no dependencies, WebCrypto
// only (SHA-256 and Ed25519 through crypto.subtle). Works in browsers (window.ConsentAudit;
// feature-detect Ed25519 support) and in Node >= 20 (module.exports).
//
//   const r = await ConsentAudit.verifyProof(proofText, leafBytes, vkey);  // throws on failure
(function (root) {
  "use strict";
  const subtle = globalThis.crypto.subtle;
  const utf8 = new TextEncoder();
  const HEADER = "c2sp.org/tlog-proof@v1";
  const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
  const MAX_SIGNATURES = 100;

  // `code` says what kind of failure it is, for a page to explain in its own language:
  // "malformed" (input that does not parse), "key" (the verifier key), "signature" (not signed
  // by that key), "origin" (another log's checkpoint), "inclusion" (the record is not in the
  // signed tree). `message` is the technical detail, in English.
  class AuditVerifyError extends Error {
    constructor(message, code) {
      super(message);
      this.code = code;
    }
  }
  function fail(message, code = "malformed") {
    throw new AuditVerifyError(message, code);
  }

  function b64encode(bytes) {
    let s = "";
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s);
  }
  function b64decode(text) {
    if (!B64.test(text)) fail("invalid base64");
    const bin = atob(text);
    const out = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    if (b64encode(out) !== text) fail("non-canonical base64");
    return out;
  }
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  }
  function equal(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }
  const sha256 = async (data) => new Uint8Array(await subtle.digest("SHA-256", data));
  const leafHash = (leaf) => sha256(concat(Uint8Array.of(0), leaf));
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));
  const keyId = async (name, pub) =>
    (await sha256(concat(utf8.encode(name), Uint8Array.of(0x0a, 0x01), pub))).slice(0, 4);
  const validName = (name) => name.length > 0 && !/[\s+\x00-\x1f]/u.test(name);

  // Verifier key "<name>+<hex key ID>+base64(0x01 || Ed25519 public key)"; the key ID must match.
  async function parseVkey(vkey) {
    const first = vkey.indexOf("+");
    const second = vkey.indexOf("+", first + 1);
    const parts = [vkey.slice(0, first), vkey.slice(first + 1, second), vkey.slice(second + 1)];
    if (first < 0 || second < 0 || !validName(parts[0]) || !/^[0-9a-f]{8}$/.test(parts[1])) {
      fail("malformed verifier key", "key");
    }
    if (!B64.test(parts[2])) fail("malformed verifier key", "key");
    const raw = b64decode(parts[2]);
    if (raw.length !== 33 || raw[0] !== 0x01) fail("unsupported verifier key type", "key");
    const publicKey = raw.slice(1);
    if (hex(await keyId(parts[0], publicKey)) !== parts[1]) fail("verifier key ID mismatch", "key");
    return { name: parts[0], keyId: parts[1], publicKey };
  }

  // Split a signed note into its text and signature lines (strict C2SP signed-note syntax).
  function parseNote(note) {
    if (/[\x00-\x09\x0b-\x1f]/.test(note)) fail("control character in note");
    const split = note.lastIndexOf("\n\n");
    if (split < 0 || !note.endsWith("\n")) fail("malformed note");
    const text = note.slice(0, split + 1);
    const block = note.slice(split + 2);
    const lines = block ? block.slice(0, -1).split("\n") : [];
    if (lines.length === 0 || lines.length > MAX_SIGNATURES) fail("bad signature count");
    const signatures = lines.map((line) => {
      const m = /^\u2014 ([^ ]+) (.*)$/u.exec(line);
      if (!m || !validName(m[1])) fail("malformed signature line");
      const raw = b64decode(m[2]);
      if (raw.length <= 4) fail("signature too short");
      return { name: m[1], keyId: hex(raw.slice(0, 4)), signature: raw.slice(4) };
    });
    return { text, signatures };
  }

  // Verify the note with one trusted key; unknown signatures are ignored. Returns the text.
  async function verifyNote(note, vkey) {
    const key = typeof vkey === "string" ? await parseVkey(vkey) : vkey;
    const { text, signatures } = parseNote(note);
    const mine = signatures.filter((s) => s.name === key.name && s.keyId === key.keyId);
    if (mine.length === 0) fail("no signature by the trusted key", "signature");
    const pub = await subtle.importKey("raw", key.publicKey, { name: "Ed25519" }, false, ["verify"]);
    const ok = await subtle.verify({ name: "Ed25519" }, pub, mine[0].signature, utf8.encode(text));
    if (!ok) fail("invalid signature by the trusted key", "signature");
    return text;
  }

  function parseCheckpoint(text) {
    const lines = text.split("\n");
    if (lines.pop() !== "" || lines.length < 3 || lines.some((l) => l === "")) {
      fail("malformed checkpoint");
    }
    if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) fail("malformed tree size");
    const rootHash = b64decode(lines[2]);
    if (rootHash.length !== 32) fail("root hash must be 32 bytes");
    const size = BigInt(lines[1]);
    if (size > 0xffffffffffffffffn) fail("tree size out of range");
    return { origin: lines[0], size, rootHash };
  }

  function parseTlogProof(text) {
    const split = text.indexOf("\n\n");
    if (split < 0) fail("missing checkpoint");
    const lines = text.slice(0, split).split("\n");
    if (lines.shift() !== HEADER) fail("not a c2sp.org/tlog-proof@v1");
    let extra = null;
    if (lines.length && lines[0].startsWith("extra ")) extra = b64decode(lines.shift().slice(6));
    const m = /^index (0|[1-9][0-9]*)$/.exec(lines.shift() ?? "");
    if (!m) fail("malformed index line");
    const proof = lines.map((line) => b64decode(line));
    return { extra, index: BigInt(m[1]), proof, checkpoint: text.slice(split + 2) };
  }

  const bitLength = (n) => (n === 0n ? 0 : n.toString(2).length);
  const popCount = (n) => n.toString(2).replace(/0/g, "").length;

  // RFC 9162 §2.1.3.2 in the transparency-dev/merkle form, with strict sizes and lengths.
  async function verifyInclusion(leaf, index, size, proof, rootHash) {
    if (index < 0n || index >= size) fail("index is not below the tree size", "inclusion");
    if (leaf.length !== 32 || rootHash.length !== 32) fail("hashes must be 32 bytes");
    if (proof.some((h) => h.length !== 32)) fail("proof hashes must be 32 bytes");
    const inner = bitLength(index ^ (size - 1n));
    if (proof.length !== inner + popCount(index >> BigInt(inner))) {
      fail("wrong proof length", "inclusion");
    }
    let h = leaf;
    for (let i = 0; i < proof.length; i++) {
      const right = i < inner && ((index >> BigInt(i)) & 1n) === 0n;
      h = right ? await nodeHash(h, proof[i]) : await nodeHash(proof[i], h);
    }
    if (!equal(h, rootHash)) {
      fail("inclusion proof does not match the checkpoint root", "inclusion");
    }
  }

  // The log a leaf names (every leaf of the service carries its log's origin as "log"), or null.
  function leafLog(leafBytes) {
    try {
      const data = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(leafBytes));
      return data !== null && typeof data === "object" && typeof data.log === "string"
        ? data.log
        : null;
    } catch (_) {
      return null;
    }
  }

  // Whether a checkpoint's origin is the expected log: the one given, else the one the leaf
  // names, else the key's own or a log under it ("<key name>/<tenant>": one key signs every
  // tenant's log of a service).
  function expectedOrigin(checkpointOrigin, origin, leafBytes, keyName) {
    const expected = origin ?? leafLog(leafBytes);
    if (expected !== null) return checkpointOrigin === expected;
    const under = keyName.replace(/\/$/, "") + "/";
    return checkpointOrigin === keyName || checkpointOrigin.startsWith(under);
  }

  // Verify a tlog-proof for the verifier's own copy of the leaf bytes against a vkey.
  async function verifyProof(proofText, leafBytes, vkey, origin) {
    const key = await parseVkey(vkey);
    const proof = parseTlogProof(proofText);
    const checkpoint = parseCheckpoint(await verifyNote(proof.checkpoint, key));
    if (!expectedOrigin(checkpoint.origin, origin, leafBytes, key.name)) {
      fail("unexpected checkpoint origin", "origin");
    }
    const hash = await leafHash(leafBytes);
    await verifyInclusion(hash, proof.index, checkpoint.size, proof.proof, checkpoint.rootHash);
    return { origin: checkpoint.origin, size: checkpoint.size, index: proof.index, leafHash: hash };
  }

  const api = {
    AuditVerifyError, b64decode, leafHash, nodeHash, parseVkey, parseNote, verifyNote,
    parseCheckpoint, parseTlogProof, verifyInclusion, verifyProof,
  };
  root.ConsentAudit = api;
  if (typeof module === "object" && module.exports) module.exports = api;
})(typeof window === "undefined" ? globalThis : window);
