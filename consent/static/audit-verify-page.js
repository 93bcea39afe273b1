// The verification page: checks an inclusion proof in the browser with WebCrypto only.
(function () {
  "use strict";
  const form = document.getElementById("verify-form");
  const result = document.getElementById("result");
  const texts = JSON.parse(document.getElementById("texts").textContent);

  // ok: true (verified), false (not verified), null (still checking).
  function show(ok, message) {
    result.textContent = message;
    result.className = ok === null ? "" : ok ? "ok" : "failed";
  }

  // The reason in the page's language, from the verifier's error code.
  function reasonOf(error) {
    const code = error && error.name === "NotSupportedError" ? "unsupported" : error && error.code;
    return texts["reason." + code] || texts["reason.malformed"];
  }

  async function loadKey() {
    const field = form.elements.namedItem("vkey");
    if (field.value) return;
    try {
      const response = await fetch("/.well-known/consent-audit-keys");
      if (response.ok) field.value = (await response.text()).trim().split("\n")[0];
    } catch (_) {
      /* the user can paste the key */
    }
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const data = new FormData(form);
    show(null, texts.checking);
    try {
      const leaf = ConsentAudit.b64decode(String(data.get("leaf")).trim());
      const origin = String(data.get("log")).trim() || undefined;
      const proof = String(data.get("proof")).replace(/\r\n/g, "\n");
      const verified = await ConsentAudit.verifyProof(proof, leaf, String(data.get("vkey")).trim(), origin);
      show(true, texts.verified.replace("{index}", verified.index).replace("{size}", verified.size)
        .replace("{log}", verified.origin));
    } catch (error) {
      show(false, texts.failed.replace("{reason}", reasonOf(error)));
    }
  });
  loadKey();
})();
