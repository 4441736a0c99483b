"""Payments 4.0.0: a major release that connects to the live payment gateway.

In production mode v4 opens a connection to the live gateway on every page, which the demo
cannot reach; on staging it uses the provider's sandbox. So this update passes every smoke test
on staging and breaks production: exactly the case a promote-then-smoke-test cycle must catch.
"""

from typing import Any


def render(page: dict[str, Any], context: dict[str, Any]) -> None:
    if context["environment"] == "production":
        raise ConnectionError("live payment gateway unreachable")
    page["sections"].append(
        '<section class="payments"><h2>Paiement sécurisé</h2>'
        "<p>Carte bancaire, virement, paiement en 3 fois (passerelle v4, mode sandbox).</p>"
        "</section>"
    )
