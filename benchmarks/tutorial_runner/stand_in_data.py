"""Local synthetic stand-ins for the files Pyro's tutorials download.

The runner has no internet, and a tutorial's numbers should not depend on a server anyway. Each
URL a tutorial reads maps to a writer that makes a CSV with the same columns and the same layout
(separator, header or none), filled with synthetic numbers from a fixed seed, shaped like the real
data where a tutorial's model depends on it (ruggedness and log GDP with the interaction the
regression tutorials fit; an 11-year sunspot cycle). The prelude sends ``pandas.read_csv`` and
``urllib.request`` to the local file for exactly these URLs; any other URL is left alone.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RUGGED_COLUMNS = (
    "isocode",
    "isonum",
    "country",
    "rugged",
    "rugged_popw",
    "rugged_slope",
    "rugged_lsd",
    "rugged_pc",
    "land_area",
    "lat",
    "lon",
    "soil",
    "desert",
    "tropical",
    "dist_coast",
    "near_coast",
    "gemstones",
    "rgdppc_2000",
    "rgdppc_1950_m",
    "rgdppc_1975_m",
    "rgdppc_2000_m",
    "rgdppc_1950_2000_m",
    "q_rule_law",
    "cont_africa",
    "cont_asia",
    "cont_europe",
    "cont_oceania",
    "cont_north_america",
    "cont_south_america",
    "legor_gbr",
    "legor_fra",
    "legor_soc",
    "legor_deu",
    "legor_sca",
    "colony_esp",
    "colony_gbr",
    "colony_fra",
    "colony_prt",
    "colony_oeu",
    "africa_region_n",
    "africa_region_s",
    "africa_region_w",
    "africa_region_e",
    "africa_region_c",
    "slave_exports",
    "dist_slavemkt_atlantic",
    "dist_slavemkt_indian",
    "dist_slavemkt_saharan",
    "dist_slavemkt_redsea",
    "pop_1400",
    "european_descent",
)
"""The columns of Nunn and Puga's country table (the tutorials read cont_africa, rugged and
rgdppc_2000)."""

SUNSPOT_COLUMNS = ("year", "mean_total_sunspot_number", "std", "observations", "definitive")
"""The yearly sunspot table: ``;``-separated, no header line (the tutorial names two columns)."""


@dataclass(frozen=True)
class StandIn:
    """One downloadable file and the function that writes its synthetic copy.

    >>> STAND_INS[RUGGED_URL].filename
    'rugged_data.csv'
    """

    url: str
    filename: str
    columns: tuple[str, ...]
    write: Callable[[Path], None]
    description: str


def _write_rugged(path: Path) -> None:
    """234 countries, about a fifth in Africa; log GDP falls with ruggedness outside Africa and
    rises inside (the sign flip the tutorials find), with noise of the real fit's size; 64 rows
    lack GDP, as in the real table, so the tutorials' ``isfinite`` filter has work to do."""
    rng = np.random.default_rng(20120201)
    n = 234
    africa = rng.random(n) < 49 / n
    rugged = rng.gamma(1.2, 1.1, n)
    log_gdp = 9.2 - 1.9 * africa - 0.2 * rugged + 0.35 * africa * rugged
    log_gdp = log_gdp + rng.normal(0.0, 0.95, n)
    gdp = np.exp(log_gdp)
    missing = rng.choice(n, size=64, replace=False)
    gdp[missing] = np.nan
    region = rng.integers(0, 6, n)  # 0 Africa is overridden by `africa`; 1..5 the other continents
    with path.open("w", newline="", encoding="ISO-8859-1") as handle:
        writer = csv.writer(handle)
        writer.writerow(RUGGED_COLUMNS)
        for i in range(n):
            continent = 0 if africa[i] else 1 + region[i] % 5
            row = {
                "isocode": "".join(chr(65 + (i // 26**k) % 26) for k in (2, 1, 0)),
                "isonum": 4 + 4 * i,
                "country": f"Country {i + 1:03d}",
                "rugged": round(float(rugged[i]), 3),
                "rugged_popw": round(float(rugged[i] * rng.uniform(0.3, 1.2)), 3),
                "rugged_slope": round(float(rugged[i] * 3.2 + rng.normal(0, 0.5)), 3),
                "rugged_lsd": round(float(rugged[i] * 0.25), 3),
                "rugged_pc": round(float(min(100.0, rugged[i] * 12)), 3),
                "land_area": round(float(rng.lognormal(9, 2)), 0),
                "lat": round(float(rng.uniform(-45, 65)), 3),
                "lon": round(float(rng.uniform(-170, 175)), 3),
                "soil": round(float(rng.uniform(0, 100)), 3),
                "desert": round(float(rng.uniform(0, 30)), 3),
                "tropical": round(float(rng.uniform(0, 100)), 3),
                "dist_coast": round(float(rng.gamma(1.0, 0.4)), 3),
                "near_coast": round(float(rng.uniform(0, 100)), 3),
                "gemstones": int(rng.poisson(3)),
                "rgdppc_2000": "" if np.isnan(gdp[i]) else round(float(gdp[i]), 3),
                "rgdppc_1950_m": round(float(np.exp(log_gdp[i] - 1.2)), 3),
                "rgdppc_1975_m": round(float(np.exp(log_gdp[i] - 0.6)), 3),
                "rgdppc_2000_m": round(float(np.exp(log_gdp[i])), 3),
                "rgdppc_1950_2000_m": round(float(np.exp(log_gdp[i] - 0.5)), 3),
                "q_rule_law": round(float(rng.normal(0, 1)), 3),
                "cont_africa": int(continent == 0),
                "cont_asia": int(continent == 1),
                "cont_europe": int(continent == 2),
                "cont_oceania": int(continent == 3),
                "cont_north_america": int(continent == 4),
                "cont_south_america": int(continent == 5),
                "legor_gbr": int(i % 3 == 0),
                "legor_fra": int(i % 3 == 1),
                "legor_soc": int(i % 3 == 2 and i % 2 == 0),
                "legor_deu": int(i % 3 == 2 and i % 4 == 1),
                "legor_sca": int(i % 3 == 2 and i % 4 == 3),
                "colony_esp": int(i % 7 == 0),
                "colony_gbr": int(i % 7 == 1),
                "colony_fra": int(i % 7 == 2),
                "colony_prt": int(i % 7 == 3),
                "colony_oeu": int(i % 7 == 4),
                "africa_region_n": int(continent == 0 and i % 5 == 0),
                "africa_region_s": int(continent == 0 and i % 5 == 1),
                "africa_region_w": int(continent == 0 and i % 5 == 2),
                "africa_region_e": int(continent == 0 and i % 5 == 3),
                "africa_region_c": int(continent == 0 and i % 5 == 4),
                "slave_exports": float(rng.poisson(2000)) if continent == 0 else 0.0,
                "dist_slavemkt_atlantic": round(float(rng.uniform(1, 10)), 3),
                "dist_slavemkt_indian": round(float(rng.uniform(1, 10)), 3),
                "dist_slavemkt_saharan": round(float(rng.uniform(1, 10)), 3),
                "dist_slavemkt_redsea": round(float(rng.uniform(1, 10)), 3),
                "pop_1400": int(rng.lognormal(13, 1.5)),
                "european_descent": round(float(rng.uniform(0, 100)), 3),
            }
            writer.writerow([row[column] for column in RUGGED_COLUMNS])


def _write_sunspots(path: Path) -> None:
    """Years 1700.5 to 2023.5; the mean count follows an 11-year cycle with Poisson noise."""
    rng = np.random.default_rng(1700)
    years = np.arange(1700, 2024) + 0.5
    cycle = 80.0 * (1.0 + np.sin(2 * np.pi * (years - 1700) / 11.0)) + 5.0
    counts = rng.poisson(cycle).astype(float)
    with path.open("w", encoding="ascii") as handle:
        for year, count in zip(years, counts, strict=True):
            std = -1.0 if year < 1818 else round(float(np.sqrt(count) + 1.0), 1)
            observations = -1 if year < 1818 else int(rng.integers(300, 9000))
            handle.write(f"{year:6.1f};{count:6.1f};{std:5.1f};{observations:5d};1\n")


RUGGED_URL = "https://d2hg8soec8ck9v.cloudfront.net/datasets/rugged_data.csv"
SUNSPOT_URL = "http://www.sidc.be/silso/DATA/SN_y_tot_V2.0.csv"

STAND_INS: dict[str, StandIn] = {
    stand_in.url: stand_in
    for stand_in in (
        StandIn(
            RUGGED_URL,
            "rugged_data.csv",
            RUGGED_COLUMNS,
            _write_rugged,
            "terrain ruggedness and GDP by country (Nunn and Puga)",
        ),
        StandIn(
            SUNSPOT_URL,
            "SN_y_tot_V2.0.csv",
            SUNSPOT_COLUMNS,
            _write_sunspots,
            "yearly mean sunspot numbers (SILSO)",
        ),
    )
}
"""Every URL that the covered tutorials download, and its stand-in."""


def stand_ins_used(source: str) -> list[StandIn]:
    """The stand-ins for the URLs that appear in a tutorial's source, in registry order.

    >>> [s.filename for s in stand_ins_used(f"pd.read_csv('{SUNSPOT_URL}', sep=';')")]
    ['SN_y_tot_V2.0.csv']
    >>> stand_ins_used("no downloads here")
    []
    """
    return [stand_in for url, stand_in in STAND_INS.items() if url in source]


def write_stand_ins(stand_ins: list[StandIn], folder: Path) -> dict[str, str]:
    """Write each stand-in's file into ``folder``; returns ``{url: local path}`` for the prelude.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = write_stand_ins([STAND_INS[SUNSPOT_URL]], Path(tmp))
    ...     Path(paths[SUNSPOT_URL]).read_text().splitlines()[0].count(";")
    4
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for stand_in in stand_ins:
        path = folder / stand_in.filename
        if not path.exists():
            stand_in.write(path)
        paths[stand_in.url] = str(path)
    return paths
