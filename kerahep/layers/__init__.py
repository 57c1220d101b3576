"""Serializable Keras layers of kerahep (keras.ops only; every backend).

Importing this package registers them with Keras' serialization
(``package="kerahep"``), so ``keras.saving.load_model`` finds them.
"""

from .transformer import PositionEmbedding, TransformerBlock  # noqa: F401
from .channel_scale import ChannelScale  # noqa: F401
from .channel_dropout import ChannelDropout  # noqa: F401
from .energy_smearing import EnergySmearing  # noqa: F401
from .sparse_noise import SparseNoise  # noqa: F401
from .log1p import Log1p  # noqa: F401
from .patches import Patchify, Unpatchify  # noqa: F401
from .moe import MixtureOfExperts  # noqa: F401
from .feature_tokenizer import FeatureTokenizer  # noqa: F401
from .per_token_dense import PerTokenDense  # noqa: F401
from .discrete_embedding import DiscreteTokenEmbedding  # noqa: F401
from .token_masking import RandomTokenMasking  # noqa: F401
from .mask_token import MaskTokenInsert  # noqa: F401
from .pair_mass import PairInvariantMass  # noqa: F401
from .squeeze_excitation import SqueezeExcitation  # noqa: F401
from .attention_pool import AttentionPooling2D  # noqa: F401
from .select_channels import SelectChannels  # noqa: F401
from .channel_log import ChannelLog1p  # noqa: F401
from .training_only import TrainingOnly  # noqa: F401
from .calibration import TemperatureScaling  # noqa: F401
from .ensemble import EnsembleSpread  # noqa: F401
