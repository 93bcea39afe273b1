"""German texts of problems (RFC 9457) and their pages; the same keys as `en`."""

from __future__ import annotations

from typing import Final

__all__ = ["DETAILS", "PROBLEMS"]

# problem slug -> (title, explanation for the problem page)
PROBLEMS: Final[dict[str, tuple[str, str]]] = {
    "validation-error": (
        "Die Anfrage ist ungültig",
        (
            "Ein Feld fehlt, hat den falschen Typ oder einen ungültigen Wert; `errors` nennt jedes "
            "Feld."
        ),
    ),
    "unauthorized": (
        "Authentifizierung erforderlich",
        (
            "Senden Sie einen gültigen, nicht widerrufenen API-Schlüssel als "
            "`Authorization: Bearer <key>`."
        ),
    ),
    "forbidden": (
        "Nicht erlaubt",
        (
            "Der API-Schlüssel ist gültig, ihm fehlt aber der Berechtigungsumfang (Scope) oder die "
            "Herkunft (Origin), die dieser Vorgang verlangt."
        ),
    ),
    "not-found": ("Nicht gefunden", "Unter dieser Adresse gibt es für Ihren Mandanten nichts."),
    "method-not-allowed": (
        "Methode nicht erlaubt",
        "Diese Ressource unterstützt diese Methode nicht.",
    ),
    "conflict": (
        "Konflikt",
        "Die Anfrage widerspricht dem aktuellen Zustand, z. B. ein bereits vergebener Name.",
    ),
    "idempotency-key-reused": (
        "Idempotency-Key mit einer anderen Anfrage wiederverwendet",
        (
            "Eine Anfrage mit einem Idempotency-Key darf nur mit genau demselben Inhalt wiederholt "
            "werden."
        ),
    ),
    "audit-pending": (
        "Noch nicht im Audit-Protokoll",
        (
            "Das Ereignis ist gespeichert, steht aber noch in keinem signierten Checkpoint (dauert "
            "unter einer Sekunde): bitte erneut versuchen."
        ),
    ),
    "payload-too-large": (
        "Anfrageinhalt zu groß",
        "Senden Sie einen kleineren Inhalt oder teilen Sie die Anfrage auf.",
    ),
    "unsupported-media-type": ("Nicht unterstützter Medientyp", "Senden Sie `application/json`."),
    "service-unavailable": (
        "Dienst vorübergehend nicht verfügbar",
        (
            "Eine Abhängigkeit (Datenbank, Policy-Engine) ist ausgefallen. Versuchen Sie es später "
            "erneut; werten Sie dies nie als Ablehnung."
        ),
    ),
    "policy-unavailable": (
        "Keine Richtlinienentscheidung möglich",
        (
            "Die Policy-Engine ist ausgefallen, hat zu lange gebraucht oder keine Entscheidung "
            "geliefert: keine Ablehnung, niemals eine Erlaubnis."
        ),
    ),
    "internal-error": (
        "Interner Fehler",
        "Auf unserer Seite ist etwas fehlgeschlagen; die Request-ID hilft bei der Suche.",
    ),
}

# detail key -> a problem's `detail` (static texts only: never a value from a request)
DETAILS: Final[dict[str, str]] = {
    "invalid-input": "Der Anfrageinhalt oder die Parameter sind ungültig.",
    "empty-body": "Der Anfrageinhalt ist leer.",
    "database-unavailable": "Die Datenbank ist nicht verfügbar.",
    "policy-no-decision": "Die Policy-Engine hat keine Entscheidung geliefert; dies ist keine "
    "Ablehnung. Versuchen Sie es später erneut.",
    "nul-character": "Text darf das NUL-Zeichen (U+0000) nicht enthalten.",
    "records-locked": "Ein anderer Vorgang (etwa ein Massenimport) hält die Datensätze dieser "
    "betroffenen Person; es wurde nichts geschrieben. Versuchen Sie es in einigen Sekunden "
    "erneut.",
    "no-such-problem-type": "Diesen Problemtyp gibt es nicht.",
    "send-json": "Senden Sie den Anfrageinhalt als JSON (Content-Type: application/json).",
    "send-ndjson": "Senden Sie den Anfrageinhalt als NDJSON (Content-Type: application/x-ndjson).",
}
