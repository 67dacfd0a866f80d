"""``python -m mbcas.experiment`` runs the real-kernel experiment (see :mod:`mbcas.experiment`)."""

from mbcas.experiment.main import main

raise SystemExit(main())
