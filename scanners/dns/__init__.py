"""DNS recon: subfinder enumerates subdomains, then dnsx (or dnspython) resolves them.

The job runs one argv, so the two tools are driven by a small runner module,
`scanners.dns.recon`, which writes one combined output file (`transcript`) that the pure
parser reads. Names outside the scan's scope are reported and never resolved.
"""

from __future__ import annotations
