"""What an inventory may declare about a site's maintenance for the 28-point audit.

Some checklist points are out of any machine's sight (a WAF contract, client training, a shared
password manager, contract clauses): the agency states them under the site's `declarations`,
keyed by point id, and the audit shows them as declared, never as seen.

```yaml
declarations:
  A5: {ok: true, note: "CDN with WAF rules, contract 2026-014", date: 2026-01-15}
  E6: {ok: false, note: "training planned for March"}
```
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

PointId = Literal[
    "A1", "A2", "A3", "A4", "A5",
    "B1", "B2", "B3", "B4", "B5",
    "C1", "C2", "C3", "C4",
    "D1", "D2", "D3", "D4", "D5",
    "E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9",
]  # fmt: skip


class Declaration(BaseModel):
    """The agency's word on one checklist point: met or not, why, and since when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ok: bool
    note: str = Field(min_length=1)
    date: dt.date | None = None  # when it was last checked or put in place
