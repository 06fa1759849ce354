"""The service texts every test flow file shares, ready for str.format (placeholders doubled)."""

from __future__ import annotations

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
