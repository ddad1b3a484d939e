"""The one place where official label ids and names become 0-based class indices.

Every dataset loader maps its annotation's labels through this module, so a class index
means the same thing everywhere:

======  ===========  =====================================================
index   class        official spellings
======  ===========  =====================================================
0       happiness    DFEW ``1`` (Happy), FERV39k ``Happy``, MAFW ``happiness``
1       sadness      DFEW ``2`` (Sad), FERV39k ``Sad``, MAFW ``sadness``
2       neutral      DFEW ``3``, FERV39k ``Neutral``, MAFW ``neutral``
3       anger        DFEW ``4`` (Angry), FERV39k ``Angry``, MAFW ``anger``
4       surprise     DFEW ``5``, FERV39k ``Surprise``, MAFW ``surprise``
5       disgust      DFEW ``6``, FERV39k ``Disgust``, MAFW ``disgust``
6       fear         DFEW ``7``, FERV39k ``Fear``, MAFW ``fear``
7       contempt     MAFW only
8       anxiety      MAFW only
9       helplessness MAFW only
10      disappointment MAFW only
======  ===========  =====================================================

The first seven are the order of the public DFER code (:data:`DFER_CLASSES`); MAFW's
eleven classes are :data:`MAFW_CLASSES` = ``DFER_CLASSES + MAFW_EXTRA_CLASSES``. MAFW's
own official order (anger, disgust, fear, happiness, neutral, sadness, surprise, contempt,
anxiety, helplessness, disappointment; 1-based ids in ``single-set.xlsx``) is
:data:`MAFW_OFFICIAL_ORDER` and is mapped here, never used as an index.
"""

from __future__ import annotations

from collections.abc import Sequence

DFER_CLASSES = ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear")
MAFW_EXTRA_CLASSES = ("contempt", "anxiety", "helplessness", "disappointment")
MAFW_CLASSES = DFER_CLASSES + MAFW_EXTRA_CLASSES

# DFEW's split csv files: 1 Happy, 2 Sad, 3 Neutral, 4 Angry, 5 Surprise, 6 Disgust, 7 Fear.
DFEW_OFFICIAL_IDS = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 5, 7: 6}
DFEW_OFFICIAL_NAMES = ("Happy", "Sad", "Neutral", "Angry", "Surprise", "Disgust", "Fear")

# FERV39k's emotion folders and split-file labels.
FERV39K_EMOTIONS = {name: i for i, name in enumerate(DFEW_OFFICIAL_NAMES)}  # folder names

# The 22 scenes of FERV39k (folder names of ``2_ClipsforFaceCrop``).
FERV39K_SCENES = (
    "Action", "Argue", "Business", "Conflict", "Contest", "Crime", "Crisis", "DailyLife",
    "ElegantArt", "Experiment", "History", "Interview", "Liveshow", "Medicine",
    "OfficialEvent", "ScholarReport", "School", "Social", "Speech", "Talkshow", "Terror", "War",
)  # fmt: skip

MAFW_OFFICIAL_ORDER = (
    "anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
    "contempt", "anxiety", "helplessness", "disappointment",
)  # fmt: skip

# Other spellings met in public annotation files, all lower case.
ALIASES = {
    "happy": "happiness",
    "joy": "happiness",
    "sad": "sadness",
    "angry": "anger",
    "surprised": "surprise",
    "disgusted": "disgust",
    "fearful": "fear",
    "scared": "fear",
    "calm": "neutral",
    "helpless": "helplessness",
    "anxious": "anxiety",
    "disappointed": "disappointment",
}


def dfew_label(value: str | int) -> int:
    """DFEW's 1-based label (``1`` Happy … ``7`` Fear) -> 0-based DFER index.

    Raises:
        ValueError: not an integer in 1..7 (DFEW's ``0`` marks a clip without a single label).
    """
    try:
        raw = int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected a DFEW label 1..7, got {value!r}") from None
    if raw not in DFEW_OFFICIAL_IDS:
        legend = ", ".join(f"{i} {n}" for i, n in enumerate(DFEW_OFFICIAL_NAMES, start=1))
        raise ValueError(f"label {raw} out of range: expected 1..7 ({legend})")
    return DFEW_OFFICIAL_IDS[raw]


def ferv39k_label(name: str) -> int:
    """FERV39k emotion name (``Happy``, ``Sad``, ``Neutral``, ``Angry``, ``Surprise``,
    ``Disgust``, ``Fear``; case-insensitive) -> 0-based DFER index."""
    key = name.strip().lower()
    for official, index in FERV39K_EMOTIONS.items():
        if official.lower() == key:
            return index
    raise ValueError(
        f"unknown emotion {name!r}: expected one of {', '.join(FERV39K_EMOTIONS)}"
    )


def mafw_label(value: str | int) -> int:
    """MAFW label -> index into :data:`MAFW_CLASSES`.

    Accepts an official name (``anger`` … ``disappointment``, case-insensitive, with the
    aliases of :data:`ALIASES`) or an official 1-based id (``1`` anger … ``11``
    disappointment, the order of :data:`MAFW_OFFICIAL_ORDER`).
    """
    text = str(value).strip()
    if text.isdigit():
        raw = int(text)
        if not 1 <= raw <= len(MAFW_OFFICIAL_ORDER):
            raise ValueError(f"label {raw} out of range: expected 1..11 or a class name")
        return MAFW_CLASSES.index(MAFW_OFFICIAL_ORDER[raw - 1])
    return class_index(text, MAFW_CLASSES)


def class_index(value: str | int, class_names: Sequence[str]) -> int:
    """A 0-based integer label or a class name -> index into ``class_names``.

    Names match case-insensitively, also through :data:`ALIASES` (``Happy`` ->
    ``happiness``). Integers must lie in ``[0, len(class_names))``.
    """
    text = str(value).strip()
    k = len(class_names)
    try:
        index = int(text)
    except ValueError:
        pass
    else:
        if not 0 <= index < k:
            raise ValueError(f"label {index} out of range [0, {k})")
        return index
    lowered = [c.lower() for c in class_names]
    key = text.lower()
    for candidate in (key, ALIASES.get(key, key)):
        if candidate in lowered:
            return lowered.index(candidate)
    raise ValueError(
        f"unknown class name {text!r}: expected a 0-based integer or one of "
        f"{', '.join(class_names)}"
    )


def default_class_names(num_classes: int) -> tuple[str, ...]:
    """DFER names for 7 classes, MAFW names for 11, ``class_0``… otherwise."""
    if num_classes == len(DFER_CLASSES):
        return DFER_CLASSES
    if num_classes == len(MAFW_CLASSES):
        return MAFW_CLASSES
    if num_classes < 1:
        raise ValueError(f"num_classes: expected >= 1, got {num_classes}")
    return tuple(f"class_{i}" for i in range(num_classes))
