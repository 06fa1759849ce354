"""The tables every test flow file shares, ready for str.format (placeholders doubled)."""

from __future__ import annotations

# The notice's own facts (bot/notice.py); it goes before TEXTS.
NOTICE = """\
[notice]
controller_address = "Liste Essai, 1 rue de l'Essai, 75000 Paris"
contact_email = "droits@example.org"
dpo_contact = "dpo@example.org"
sponsor = "Association de financement de la Liste Essai"
sponsor_address = "1 rue de l'Essai, 75000 Paris"
sponsor_email = "mandataire@example.org"
election = "Elections municipales 2030"
period_start = 2026-01-01
funding = "Fonds prives de l'Union : dons de personnes physiques"

"""

# Followed by the flow's own `content = [...]` line.
TEXTS = """\
[texts]
consent_request = "{{controller}} : acceptez-vous de {{purpose}} ? Source : {{source}}. OUI ou STOP. {{notice_url}}"
confirmation = "Merci ! STOP pour annuler. {{controller}}"
declined = "C'est note. {{controller}}"
stopped = "Opposition enregistree. {{controller}}"
help = "{{controller}}. Source : {{source}}. {{notice_url}}. STOP pour refuser."
clarification = "Repondez OUI ou STOP. {{controller}}"
"""

# A flow's own price per segment (bot/prices.py), appended after the flow's tables.
PRICES = """
[[prices]]
gateway = "twilio"
destination = "fr-mobile"
euros = 0.1
set_on = 2026-11-01
"""
