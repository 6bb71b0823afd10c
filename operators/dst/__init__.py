"""3D-DST operators, one module per engine/dst/ job: dataset (render and annotate views), generate (ControlNet images), filter (K-fold)."""
