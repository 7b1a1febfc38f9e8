"""The device models, one file each (the interface: hardware/device_model.py). A preset names its
model by instance: ``model=GPU`` (gpu.py), ``model=PIM`` (pim.py), ``model=DataflowModel(params)``
(dataflow.py)."""
