"""Adapters: values in, bytes out, for any domain. ``photos`` checks and resizes images (item
photos, the venue's logo, the demo's placeholders), ``qr`` draws QR codes (item labels, member
cards, referral vouchers) and ``labels`` lays them out on printable label sheets. They hold no
rule of the library's and import no domain (docs/architecture.md)."""
