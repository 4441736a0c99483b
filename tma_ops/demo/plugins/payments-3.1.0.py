"""Payments 3.1.0: a checkout block; always talks to the payment provider's sandbox."""

from typing import Any


def render(page: dict[str, Any], context: dict[str, Any]) -> None:
    page["sections"].append(
        '<section class="payments"><h2>Paiement sécurisé</h2>'
        "<p>Carte bancaire, virement (passerelle v3).</p></section>"
    )
