"""``python -m mbcas.local.emulator`` runs the node emulator (see :func:`~mbcas.local.emulator.main`)."""

from mbcas.local.emulator.facade import main

raise SystemExit(main())
