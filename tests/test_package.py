import keras

import sercal_keras
from sercal_keras import layers


def test_importing_the_package_registers_every_layer():
    for name in layers.__all__:
        assert keras.saving.get_registered_object(f"sercal_keras>{name}") is getattr(layers, name), name
    assert "MFCC" in layers.__all__ and sercal_keras.MFCC is layers.MFCC
