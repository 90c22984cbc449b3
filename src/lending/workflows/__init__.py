"""Work that spans domains, above all of them: a person's data export and erasure
(``person_data``), the venue's setup file (``setup_file``), the first run of a new install
(``first_run``), the demo venue (``demo``) and backups (``backup``). A domain never imports
from here; docs/architecture.md gives the order."""
