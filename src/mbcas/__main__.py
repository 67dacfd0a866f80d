"""``python -m mbcas`` runs the CLI."""

from mbcas.cli.main import main

raise SystemExit(main())
