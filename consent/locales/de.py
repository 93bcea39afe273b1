"""German texts of problems (RFC 9457) and their pages; the same keys as `en`."""

from __future__ import annotations

from typing import Final

__all__ = ["DETAILS", "FIELD_MESSAGES", "FIELD_PATH", "FIELD_REASONS", "PROBLEMS"]

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

# detail key -> a problem's `detail` or a field message (`Localized`); a `{name}` is a value
# the service names (a purpose's key, a scope, a bound), never personal data
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
    # -- the service's own texts; `{name}`: a value the text names, the same in every language
    # authentication and tenancy
    "api-key-required": (
        "Ein gültiger API-Schlüssel ist erforderlich (Authorization: Bearer <key>)."
    ),
    "key-lacks-scope": "Diesem API-Schlüssel fehlt der Scope '{scope}'.",
    "banner-key-writes-only": "Ein Banner-Schlüssel (mit allowed_origins) darf nur schreiben: "
    "sein Geheimnis ist öffentlich.",
    "key-origin-not-allowed": (
        "Dieser API-Schlüssel darf nur von seinen erlaubten Origins aus verwendet werden."
    ),
    "banner-key-visitor-only": (
        "Ein Banner-Schlüssel (mit allowed_origins) zeichnet nur die eigene Entscheidung einer "
        "besuchenden Person auf diesem Gerät auf: Methode explicit oder gpc, und eine "
        "Geräte-Kennung oder eine Subjekt-ID. Andere Ereignisse (agent, import, eine "
        "E-Mail-Adresse oder Telefonnummer) zeichnen Sie von Ihrem Server aus mit einem "
        "Schlüssel ohne Origins auf."
    ),
    "banner-key-no-link": (
        "Ein Banner-Schlüssel (mit allowed_origins) darf keine betroffenen Personen verknüpfen: "
        "sein Geheimnis ist öffentlich, und eine Verknüpfung führt zwei Personen endgültig "
        "zusammen. Verknüpfen Sie von Ihrem Server aus mit einem Schlüssel ohne Origins."
    ),
    "key-own-property-only": "Dieser API-Schlüssel darf nur für seine eigene Property aufzeichnen.",
    "property-origin-not-allowed": "Diese Property nimmt Anfragen aus dem Browser nur von ihren "
    "erlaubten Origins an.",
    "name-length": "muss 1-200 Zeichen lang sein",
    "no-tenant": "Es gibt keinen Mandanten {tenant_id}.",
    "tenant-not-found": "Mandant nicht gefunden.",
    "property-exists": "Eine Property mit diesem Namen gibt es bereits.",
    "banner-key-scopes": (
        "ein Schlüssel mit allowed_origins (ein Banner-Schlüssel) darf nur 'write' haben"
    ),
    "no-such-property": "diese Property gibt es nicht",
    "key-secret-shown-once": "Der API-Schlüssel {key_id} wurde unter diesem Idempotency-Key "
    "erstellt; sein Geheimnis wurde nur einmal angezeigt. Widerrufen Sie diesen Schlüssel und "
    "erstellen Sie einen neuen, falls das Geheimnis verloren ist.",
    "no-such-api-key": "Diesen API-Schlüssel gibt es nicht.",
    # idempotency
    "idempotency-key-format": "muss aus 1-200 druckbaren Zeichen bestehen",
    "idempotency-key-erased": "Der Schreibvorgang zu diesem Idempotency-Key betraf eine Person, "
    "deren Daten inzwischen gelöscht wurden: Er wird nicht erneut ausgeführt. Eine neue "
    "Entscheidung braucht einen neuen Schlüssel.",
    "idempotency-key-other-request": (
        "Dieser Idempotency-Key wurde für eine andere Anfrage verwendet."
    ),
    # lists
    "limit-range": "muss zwischen 1 und {max} liegen",
    "cursor-not-ours": "kein Cursor, den diese API ausgegeben hat",
    "cursor-not-this-list": "kein Cursor der Liste {kind} dieser betroffenen Person (aus deren "
    "next_cursor)",
    # the catalogue
    "listed-twice": "'{key}' ist doppelt aufgeführt",
    "necessary-not-consent": (
        "ein unbedingt erforderlicher Zweck beruht nicht auf einer Einwilligung"
    ),
    "purpose-exists": "Der Zweck '{key}' existiert bereits.",
    "no-purpose": "Es gibt keinen Zweck '{key}'.",
    "unknown-purposes": "unbekannte Zwecke: {purposes}",
    "notice-exists": "Der Hinweis '{key}' existiert bereits.",
    "no-notice": "Es gibt keinen Hinweis '{key}'.",
    "version-draft-open": "Version {version} ist ein unveröffentlichter Entwurf: "
    "Veröffentlichen, korrigieren (PUT) oder löschen Sie ihn zuerst.",
    "version-already-published": "Version {version} ist bereits veröffentlicht.",
    "version-immutable": "Version {version} ist veröffentlicht, und eine veröffentlichte "
    "Version ist unveränderlich: Entwerfen Sie stattdessen eine neue Version.",
    "notice-has-no-version": "Der Hinweis '{key}' hat keine Version {version}.",
    "vendor-exists": "Der Anbieter '{name}' existiert bereits.",
    "builtin-identifier-type": "'{key}' ist ein eingebauter Identifikatortyp.",
    "identifier-type-exists": "Der Identifikatortyp '{key}' existiert bereits.",
    # consents and preferences
    "agent-required": "erforderlich, wenn method 'agent' ist",
    "time-zone-required": "muss eine Zeitzone enthalten",
    "in-the-future": "liegt in der Zukunft",
    "before-1970": "liegt vor 1970-01-01T00:00:00Z",
    "purpose-repeated": "ein Zweck kommt in einem Ereignis mehr als einmal vor",
    "notice-version-required": "erforderlich: die gezeigte Version des Hinweises",
    "notice-hash-needs-version": "braucht die notice_version_id, deren Hash er ist",
    "gpc-cannot-grant": (
        "ein GPC-Signal ist ein Widerspruch und erteilt keine Einwilligung: zeichnen Sie eine "
        "Einwilligung mit der Methode auf, die die Person verwendet hat, und mit der gezeigten "
        "Version des Hinweises"
    ),
    "invalid-consent": "Ungültige Einwilligung.",
    "unknown-purpose": "unbekannter Zweck '{purpose}'",
    "no-such-notice-version": "diese Version des Hinweises gibt es nicht",
    "notice-version-unpublished": "diese Version des Hinweises ist nicht veröffentlicht",
    "purpose-not-asked": "vom gezeigten Hinweis nicht erfragt",
    "notice-hash-mismatch": "passt nicht zur Version des Hinweises",
    "notice-language-missing": "die Version des Hinweises hat keinen Text in dieser Sprache",
    "before-notice-shown": (
        "liegt vor dem ersten Zeigen dieser Version des Hinweises ({since}): unter ihr kann die "
        "Entscheidung damals nicht getroffen worden sein (eine Version, die vor ihrer "
        "Veröffentlichung hier gezeigt wurde, nennt den Beginn in shown_since)"
    ),
    "invalid-preferences": "Ungültige Präferenzen.",
    "preference-twice": "diese Präferenz kommt zweimal vor",
    "value-one-of": "muss einer dieser Werte sein: {allowed}",
    "channel-one-of": "der Kanal muss einer dieser Werte sein: {channels}",
    "frequency-per-channel": "die Häufigkeit gilt je Kanal oder für 'default'",
    # subjects and identifiers
    "no-such-subject": "Diese betroffene Person gibt es nicht.",
    "no-subject-with-identifier": "Es gibt keine betroffene Person mit diesem Identifikator.",
    "subject-id-or-identifier": "geben Sie genau eines von subject_id oder identifier an",
    "unknown-identifier-type": "unbekannter Identifikatortyp '{type}'",
    "not-an-email": "keine E-Mail-Adresse",
    "not-a-phone-number": (
        "keine Telefonnummer im internationalen Format (+<Landesvorwahl><Nummer>)"
    ),
    "identifier-characters": "muss aus 1-200 sichtbaren ASCII-Zeichen bestehen",
    "identifier-too-long": "zu lang",
    # the audit log
    "no-audit-log": "Dieser Mandant hat noch kein Audit-Protokoll.",
    "no-checkpoint-yet": "Das Protokoll hat noch keinen signierten Checkpoint.",
    "no-checkpoint-of-size": "Es gibt keinen signierten Checkpoint dieser Größe.",
    "no-audit-event": "Es gibt kein Audit-Ereignis mit dieser ID.",
    "event-not-integrated": "Das Ereignis ist noch nicht in das Protokoll aufgenommen; "
    "versuchen Sie es gleich erneut.",
    "event-after-checkpoint": (
        "das Ereignis wurde nach diesem Checkpoint aufgenommen: geben Sie einen späteren an"
    ),
    "event-newer-than-checkpoint": "Das Ereignis ist neuer als dieser Checkpoint; versuchen Sie "
    "es gleich erneut.",
    "at-most-tree-size": "darf höchstens die Baumgröße sein, {size}",
    "from-range": "muss zwischen 1 und to liegen",
    "subject-or-period-not-both": (
        "geben Sie eine subject_id an oder since und until: nicht beides"
    ),
    "until-after-since": "muss später als since sein",
    "subject-or-period": "geben Sie eine subject_id oder since und until an",
    # decisions
    "invalid-subject-references": "Ungültige Verweise auf betroffene Personen.",
    "ledger-unavailable-no-decision": "Das Einwilligungsregister ist nicht verfügbar; es wurde "
    "keine Entscheidung getroffen (keine Ablehnung).",
    "ledger-unavailable": "Das Einwilligungsregister ist nicht verfügbar.",
    "catalogue-unavailable": "Der Katalog ist nicht verfügbar.",
    "decision-log-unavailable": "Das Entscheidungsprotokoll ist nicht verfügbar.",
    "no-such-decision": "Diese Entscheidung gibt es nicht.",
    "no-header-line": "der Inhalt hat keine Kopfzeile",
    "invalid-header": "ungültige Kopfzeile: {reason}",
    "header-not-json": "die Kopfzeile ist kein JSON",
    "line-longer-than": "Zeile länger als {max} Bytes",
    "unknown-query-parameter": "unbekannter Query-Parameter; diese Operation nimmt {takes}",
    "unknown-query-parameter-none": (
        "unbekannter Query-Parameter; diese Operation nimmt keine Query-Parameter"
    ),
    "no-such-file": "Diese Datei gibt es nicht.",
    # what Litestar refuses before an operation runs (consent.errors)
    "methods-allowed": "Dieser Pfad nimmt nur {methods} an.",
    "no-such-path": (
        "Keine Operation hat diesen Pfad; die Operationen der API stehen in /schema/openapi.json."
    ),
    "body-too-large": (
        "Der Anfrageinhalt ist größer, als diese Operation annimmt: höchstens {limit} Bytes."
    ),
    "query-parameter-missing": "ein erforderlicher Query-Parameter, nicht gesendet",
    "content-length-invalid": "keine Anzahl von Bytes",
    "host-invalid": "kein gültiger Hostname",
}

# msgspec's and Litestar's words about a bad body or parameter (a 400's `errors[].message`, and
# the `detail` of malformed JSON), by shape: English shape -> German template. A `{slot}` stands
# for a type, bound, length, field name or value, copied unchanged (consent.locales.fields says
# what each slot may hold); a message of any other shape stays English.
FIELD_MESSAGES: Final[dict[str, str]] = {
    "Expected `{type}`, got `{got}`": "Erwartet `{type}`, erhalten `{got}`",
    "Expected `{type}`": "Erwartet `{type}`",
    "Expected `{type}` with a timezone component": "Erwartet `{type}` mit Zeitzone",
    "Expected `{type}` with no timezone component": "Erwartet `{type}` ohne Zeitzone",
    "Expected `{type}` of length {op} {n}": "Erwartet `{type}` der Länge {op} {n}",
    "Expected `{type}` {op} {bound}": "Erwartet `{type}` {op} {bound}",
    "Expected `{type}` that's a multiple of {bound}": (
        "Erwartet `{type}` als Vielfaches von {bound}"
    ),
    "Expected `{type}` matching regex {regex}": (
        "Erwartet `{type}` passend zum regulären Ausdruck {regex}"
    ),
    "Expected `array` of length {n}": "Erwartet `array` der Länge {n}",
    "Expected `array` of length {n}, got {m}": "Erwartet `array` der Länge {n}, erhalten Länge {m}",
    "Expected `array` of length {n} to {m}": "Erwartet `array` der Länge {n} bis {m}",
    "Expected `array` of length {n} to {m}, got {k}": (
        "Erwartet `array` der Länge {n} bis {m}, erhalten Länge {k}"
    ),
    "Expected `array` of at least length {n}, got {m}": (
        "Erwartet `array` der Mindestlänge {n}, erhalten Länge {m}"
    ),
    "Expected `array` of at most length {n}": "Erwartet `array` der Höchstlänge {n}",
    "Expected `array` of at most length {n}, got {m}": (
        "Erwartet `array` der Höchstlänge {n}, erhalten Länge {m}"
    ),
    "Object contains unknown field `{field}`": "Objekt enthält unbekanntes Feld `{field}`",
    "Object missing required field `{field}`": "Im Objekt fehlt das Pflichtfeld `{field}`",
    "Invalid enum value": "Ungültiger Enum-Wert",
    "Invalid enum value {value}": "Ungültiger Enum-Wert {value}",
    "Invalid value {value}": "Ungültiger Wert {value}",
    "Invalid RFC3339 encoded datetime": "Ungültiger Zeitpunkt (RFC3339 erwartet)",
    "Invalid RFC3339 encoded date": "Ungültiges Datum (RFC3339 erwartet)",
    "Invalid RFC3339 encoded time": "Ungültige Uhrzeit (RFC3339 erwartet)",
    "Invalid ISO8601 duration": "Ungültige Dauer (ISO8601 erwartet)",
    "Only units 'D', 'H', 'M', and 'S' are supported when parsing ISO8601 durations": (
        "In ISO8601-Dauern sind nur die Einheiten 'D', 'H', 'M' und 'S' erlaubt"
    ),
    "Invalid UUID": "Ungültige UUID",
    "Invalid UUID bytes": "Ungültige UUID-Bytes",
    "Invalid base64 encoded string": "Ungültige Base64-Zeichenkette",
    "Invalid decimal string": "Ungültige Dezimalzahl",
    "Invalid epoch timestamp": "Ungültiger Unix-Zeitstempel",
    "Timestamp is out of range": "Zeitstempel außerhalb des gültigen Bereichs",
    "Duration is out of range": "Dauer außerhalb des gültigen Bereichs",
    "Number out of range": "Zahl außerhalb des gültigen Bereichs",
    "Integer value out of range": "Ganzzahl außerhalb des gültigen Bereichs",
    "Input data was truncated": "Die Eingabe endet vorzeitig (abgeschnitten)",
    "JSON is malformed: {reason} (byte {n})": "JSON ist fehlerhaft: {reason} (Byte {n})",
    # consent.decisions.jurisdictions: a `context.jurisdiction` code that does not exist
    "jurisdiction is not an ISO 3166-1 country or ISO 3166-2 subdivision code": (
        "jurisdiction ist kein Ländercode nach ISO 3166-1 und kein Code einer Untergliederung "
        "nach ISO 3166-2"
    ),
    "jurisdiction is not an ISO 3166-1 country or ISO 3166-2 subdivision code; for this country "
    "use {country}": (
        "jurisdiction ist kein Ländercode nach ISO 3166-1 und kein Code einer Untergliederung "
        "nach ISO 3166-2; für dieses Land verwenden Sie {country}"
    ),
    "jurisdiction is not an ISO 3166-1 country or ISO 3166-2 subdivision code; {country} is "
    "known, its subdivision is not (or send the country alone)": (
        "jurisdiction ist kein Ländercode nach ISO 3166-1 und kein Code einer Untergliederung "
        "nach ISO 3166-2; {country} ist bekannt, diese Untergliederung nicht (oder senden Sie "
        "nur das Land)"
    ),
}
# The `{reason}` of malformed JSON: msgspec's words -> German (another reason: stays English).
FIELD_REASONS: Final[dict[str, str]] = {
    "invalid number": "ungültige Zahl",
    "invalid character": "ungültiges Zeichen",
    "invalid escaped character": "ungültiges maskiertes Zeichen",
    "invalid escape character in string": "ungültiges Escape-Zeichen in einer Zeichenkette",
    "invalid character in unicode escape": "ungültiges Zeichen in einer Unicode-Escape-Sequenz",
    "unexpected end of hex escape": "unerwartetes Ende einer Hex-Escape-Sequenz",
    "invalid utf-16 surrogate pair": "ungültiges UTF-16-Surrogatpaar",
    "unexpected end of escaped utf-16 surrogate pair": (
        "unerwartetes Ende eines maskierten UTF-16-Surrogatpaars"
    ),
    "expected ',' or ']'": "',' oder ']' erwartet",
    "expected ',' or '}'": "',' oder '}' erwartet",
    "expected '\"'": "'\"' erwartet",
    "expected ':'": "':' erwartet",
    "trailing comma in array": "überzähliges Komma im Array",
    "trailing comma in object": "überzähliges Komma im Objekt",
    "trailing characters": "überzählige Zeichen am Ende",
    "object keys must be strings": "Objektschlüssel müssen Zeichenketten sein",
}
# msgspec's ` - at `$.path`` after a message (errors.py takes it out where it names the field).
FIELD_PATH: Final = " - bei `{path}`"
