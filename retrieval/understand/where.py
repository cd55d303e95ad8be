"""Place and camera words: "in Lisbon", "München", "Paris, Texas", "on my iPhone", "Pixel 7 photos".

A place name becomes a filter when it is plausibly where the photo was taken: after a place
preposition ("in", "from", "near"), or alone when it is a place's own name of some size and not
an everyday word. Words that are also places ("nice", "reading", "orange", "turkey", "van",
"bath") need both a preposition and a capital ("in Nice"); a name followed by another capitalised
word is part of a longer name ("Paris Hilton", "Washington Monument"); a place after "map of" is
what the photo shows, not where it was taken. A camera needs a cue ("with my", "shot on") or a
following "photos": alone, "iphone" or "canon lens" is what the photo shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from indexer.places.gazetteer import Place
from indexer.places.names import PlaceNames, contains, fold
from retrieval.understand.tokens import CAMERA_CUES, PHOTO_WORDS, PLACE_CUES, TAKEN, Token

# Everyday English words that GeoNames also has as places (own or alternate names) people may
# type in a query. Found by intersecting the shipped names with the most frequent words of
# CLIP's BPE vocabulary and reading the list; a place here needs "in" and a capital.
COMMON_WORDS = frozenset(
    """
    one man time son come best off most side set big much ever per port never say date bad
    sale god tour care nice young media green lot name put seen era turn center police buy
    hall market same gold march tell reading hit cat far mission bar spring area worth van
    along rest island save hill born deal bank human male china luck pop holiday due ray
    valley rise airport tune central cars mine bag sunset mobile union bell pet soul summit
    golden bury champion rich chair orange bear jordan jersey freedom wave officer turkey
    okay dam rugby drama downtown surprise pin jam pen marks yoga creek bid lion hang drug
    sunrise temple gay bath tape solo marathon grass normal oral monster hunter walker tank
    bone mile federal olympic crystal bat salt semi riding metro angle hub boom derby lemon
    republic batman paradise springs roman log pan grove eagle gap empire pets dawn basic
    vine hart tall sum independence buffalo opera hire nails liberty sole pearl hail lens
    delta hurricane clay plaza alliance tours roses split fleet enterprise tire sterling
    pace acre brick canal horn trap butterfly dig liberal dame polo bloom cone alley sandy
    cork hook loop spray plain punch humble barn salon retreat aim junction cage savage
    roles bake sour rim rapid imperial anthem sake panda mustang coco superior keen fountain
    aurora soda lone diva tongue eden terrace vista mango mascot outer rust cove peer brake
    sparks grants spike tub plaque plum rouge jupiter walnut vineyard commonwealth highland
    highlands woodland rye cocoa torn thorn flint reservoir worms linen laurel plantation
    coma forge providence seaside flora badger elbow elk cobra orion alter gale centennial
    chad guinea reunion victoria hippo samba tango limo pesto pristine homo natal concordia
    hue mary lime tunes genes marina mercy hope beach sea ocean lake river park garden
    church school home house city town village street road bridge castle tower mountain
    forest desert snow rain sun moon star sky light night day morning evening dog horse bird
    fish flower tree red blue white black pink brown grey gray silver love peace joy lucky
    happy sunny windy stone rock
    """.split()  # noqa: SIM905
)
_SHORT_OK = frozenset({"uk", "usa", "uae", "nyc", "la"})
_DEPICTIONS = frozenset(
    """
    map maps poster posters painting paintings postcard postcards drawing flag flags model
    souvenir magnet book guide guidebook sign logo
    """.split()  # noqa: SIM905
)
_MIN_BARE_POPULATION = 100_000  # a lone lowercase name is a place only for a city this size

CAMERA_BRANDS = frozenset(
    """
    iphone ipad pixel galaxy canon nikon sony fujifilm fuji olympus panasonic lumix leica
    pentax ricoh gopro dji hasselblad kodak samsung huawei xiaomi oneplus motorola nokia
    minolta polaroid insta360 apple google oppo
    """.split()  # noqa: SIM905
)
# Brand words that are mostly everyday words: a camera only as "my galaxy", "shot on pixel",
# or with a model ("galaxy s21"), never from "light from the galaxy".
_AMBIGUOUS_BRANDS = frozenset(
    """
    pixel galaxy apple google polaroid
    """.split()  # noqa: SIM905
)
_MODEL_WORDS = frozenset(
    """
    pro max plus mini ultra mark ii iii iv se xl xs xr hero eos mavic phantom air osmo
    pocket note lite fold flip
    """.split()  # noqa: SIM905
)
_MODEL = re.compile(r"^(?=.*\d)[a-z0-9][a-z0-9\-]{0,9}$")
_YEAR = re.compile(r"^(19|20)\d\d$")
_OWNERS = frozenset(
    """
    my a an the our his her their
    """.split()  # noqa: SIM905
)


@dataclass
class Found:
    positions: list[int]
    place: Place | None = None
    alternatives: tuple[Place, ...] = ()
    camera: str | None = None


def _free(tokens: list[Token], k: int) -> Token | None:
    return tokens[k] if 0 <= k < len(tokens) and not tokens[k].claimed else None


def _claim(tokens: list[Token], positions: list[int]) -> None:
    for k in positions:
        tokens[k].claimed = True


def find_cameras(tokens: list[Token]) -> list[Found]:
    found: list[Found] = []
    for i, token in enumerate(tokens):
        if token.claimed or token.core not in CAMERA_BRANDS:
            continue
        end = i + 1
        while (t := _free(tokens, end)) and (
            (_MODEL.match(t.core) and not _YEAR.match(t.core)) or t.core in _MODEL_WORDS
        ):
            end += 1
        lead: list[int] = []
        k = i - 1
        owner = (t := _free(tokens, k)) is not None and t.core in _OWNERS
        if owner:
            lead.insert(0, k)
            k -= 1
        cue = (t := _free(tokens, k)) is not None and t.core in CAMERA_CUES
        if cue:
            lead.insert(0, k)
            k -= 1
            if (t := _free(tokens, k)) is not None and t.core in TAKEN:
                lead.insert(0, k)
        elif (t := _free(tokens, k)) is not None and t.core in TAKEN:  # "shot iphone"? no cue
            cue = False
        after = _free(tokens, end)
        photos = after is not None and after.core in PHOTO_WORDS
        taken = any(tokens[p].core in TAKEN for p in lead)
        mine = owner and tokens[i - 1].core in ("my", "our")
        if token.core in _AMBIGUOUS_BRANDS and end == i + 1 and not (mine or taken):
            continue
        if not (cue or photos):
            continue
        positions = (lead if cue else []) + list(range(i, end))
        _claim(tokens, positions)
        words = " ".join(tokens[p].core for p in range(i, end))
        found.append(Found(positions, camera=words))
    return found


@lru_cache(maxsize=4)
def _country_latitudes(names: PlaceNames) -> dict[str, float]:
    """Each country's latitude by its most populous shipped city (for the season's hemisphere)."""
    gz, best = names.gazetteer, {}
    for index, code in enumerate(gz.city_countries):
        if code not in best or gz.populations[index] > gz.populations[best[code]]:
            best[code] = index
    return {code: float(gz.latitudes[index]) for code, index in best.items()}


def southern(place: Place, names: PlaceNames) -> bool:
    """Whether a place lies south of the equator (a country or region by its largest city)."""
    if place.latitude is not None:
        return place.latitude < 0
    if place.kind == "continent":
        return place.name in ("Oceania", "South America", "Antarctica")
    return _country_latitudes(names).get(place.country_code or "", 0.0) < 0


def find_places(tokens: list[Token], names: PlaceNames, max_words: int = 4) -> list[Found]:
    found: list[Found] = []
    i = 0
    while i < len(tokens):
        match = _place_at(tokens, i, names, max_words)
        if match is None:
            i += 1
            continue
        _claim(tokens, match.positions)
        found.append(match)
        i = max(match.positions) + 1
    return found


def _span_key(tokens: list[Token], i: int, n: int) -> str | None:
    span = tokens[i : i + n]
    if len(span) < n or any(t.claimed for t in span):
        return None
    if any(t.text.endswith(",") for t in span[:-1]):  # "Paris, Texas": the comma ends a name
        return None
    return fold(" ".join(t.text for t in span))


def _place_at(tokens: list[Token], i: int, names: PlaceNames, max_words: int) -> Found | None:
    for n in range(max_words, 0, -1):
        key = _span_key(tokens, i, n)
        if not key or key not in names:
            continue
        candidates = names.lookup(key)
        lead = _lead(tokens, i)
        if not _plausible(tokens, i, n, key, candidates, bool(lead)):
            continue
        places = [p for p, _ in candidates]
        positions = lead + list(range(i, i + n))
        qualifier = _qualifier(tokens, i + n, names, places)
        if qualifier is not None:
            extra, places = qualifier
            positions += extra
        return Found(positions, place=places[0], alternatives=tuple(places[1:]))
    return None


def _lead(tokens: list[Token], i: int) -> list[int]:
    """The preposition (and "the") before a name: "in", "from the", "near"."""
    if (t := _free(tokens, i - 1)) is not None and t.core in PLACE_CUES:
        return [i - 1]
    the = _free(tokens, i - 1)
    cue = _free(tokens, i - 2)
    if the is not None and the.core == "the" and cue is not None and cue.core in PLACE_CUES:
        return [i - 2, i - 1]
    return []


def _plausible(tokens, i: int, n: int, key: str, candidates, cued: bool) -> bool:
    best, own = candidates[0]
    capital = tokens[i].capitalized
    if key in COMMON_WORDS or (len(key) <= 3 and key not in _SHORT_OK):
        return cued and capital
    if cued:
        return True
    if not own and not capital:
        return False
    if best.kind == "city" and best.population < _MIN_BARE_POPULATION:
        return False
    following = _free(tokens, i + n)
    if following is not None and following.capitalized and not tokens[i + n - 1].text.endswith(","):
        return False  # "Paris Hilton", "Washington Monument": part of a longer name
    before = _free(tokens, i - 1)
    if before is not None and before.core == "of":
        depicted = _free(tokens, i - 2)
        if depicted is not None and depicted.core in _DEPICTIONS:
            return False  # "1850 map of london": what the photo shows
    return True


def _qualifier(tokens, j: int, names: PlaceNames, places: list[Place]):
    """ "Paris, Texas" / "Portland Oregon": a following region or country that holds one."""
    for m in (3, 2, 1):
        key = _span_key(tokens, j, m)
        if not key or key not in names or key in COMMON_WORDS:
            continue
        outers = [p for p, _ in names.lookup(key)[:3] if p.kind in ("region", "country")]
        inside = [p for p in places if any(contains(o, p) for o in outers)]
        if inside:
            return list(range(j, j + m)), inside
    return None
