"""The one language module: a code (ISO 639-1, ISO 639-3 or FLORES-200, in either spelling, or an
English name) → a `Language` (canonical code, FLORES-200 code, English name for prompts).

Three sources, looked up in this order:
1. a user file (`--languages FILE` or the `AIT_LANGUAGES` environment variable): a TSV with columns
   `code`, `flores`, `name` and optional `seen` and `override`, for private-use codes (`qxx`) and for
   other names in prompts ("Northern Uzbek"). It is loaded only where a caller says so: `use_language_file`
   (the command layer before it runs a stage, a library user before building options); parsing the
   `languages` option reads and checks the file but changes nothing;
2. ait's own table (below): only what no library has: the paper's prompt names of its languages, BLOOM's
   pre-training ("seen") list, and the FLORES-200 code list;
3. the `langcodes` library (with `language-data`): every other ISO 639-1 / 639-3 code and every other
   FLORES-200 code, with the library's English name.

"Seen" follows the BLOOM model card's language list (45 codes; the card counts 46 languages because
Chinese is split into simplified and traditional). It is BLOOM's: `seen_list` says which list a run uses
(BLOOM's for BLOOM/BLOOMZ models, or what the user declares for other models). "Unseen" here are the
paper's 24 BLOOMZ+24 languages plus German, Dutch and Russian (BLOOMZ+3).
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Literal, Optional

from aligninstruct_cli.errors import AitError, InputError
from aligninstruct_cli.options import check_options, option
from aligninstruct_cli.textfile import iter_lines


BUILT_IN, LIBRARY = "built-in", "langcodes"  # a Language's source; a user file's is its path


@dataclass(frozen=True)
class Language:
    code: str  # canonical: ISO 639-1 where it exists, else ISO 639-3 (or a user file's code)
    flores: str | None  # FLORES-200 code, e.g. kaz_Cyrl (None: not in FLORES-200, none given)
    name: str  # English name, as written in prompts
    seen: bool  # among BLOOM's pre-training languages
    aliases: tuple[str, ...] = ()  # extra codes accepted (other FLORES scripts, 639-3)
    source: str = BUILT_IN  # built-in, langcodes, or the user file's path
    declared_seen: bool | None = None  # a user file's `seen` column: seen by the user's model

    def __str__(self) -> str:
        return self.code


def _rows(seen: bool, table: str) -> list[Language]:
    out = []
    for line in table.strip().splitlines():
        parts = [p.strip() for p in line.split("|")]
        code, flores, name = parts[:3]
        aliases = tuple(a for a in parts[3].split() if a) if len(parts) > 3 else ()
        out.append(Language(code, flores, name, seen, aliases))
    return out


# code | FLORES-200 | English name | other accepted codes
_SEEN = _rows(True, """
ak  | aka_Latn | Akan
ar  | arb_Arab | Arabic | ara
as  | asm_Beng | Assamese | asm
bm  | bam_Latn | Bambara | bam
bn  | ben_Beng | Bengali | ben
ca  | cat_Latn | Catalan | cat
en  | eng_Latn | English | eng
es  | spa_Latn | Spanish | spa
eu  | eus_Latn | Basque | eus
fon | fon_Latn | Fon
fr  | fra_Latn | French | fra
gu  | guj_Gujr | Gujarati | guj
hi  | hin_Deva | Hindi | hin
id  | ind_Latn | Indonesian | ind
ig  | ibo_Latn | Igbo | ibo
ki  | kik_Latn | Kikuyu | kik
kn  | kan_Knda | Kannada | kan
lg  | lug_Latn | Luganda | lug
ln  | lin_Latn | Lingala | lin
ml  | mal_Mlym | Malayalam | mal
mr  | mar_Deva | Marathi | mar
ne  | npi_Deva | Nepali | nep
nso | nso_Latn | Northern Sotho
ny  | nya_Latn | Chichewa | nya
or  | ory_Orya | Odia | ori
pa  | pan_Guru | Punjabi | pan
pt  | por_Latn | Portuguese | por
rn  | run_Latn | Kirundi | run
rw  | kin_Latn | Kinyarwanda | kin
sn  | sna_Latn | Shona | sna
st  | sot_Latn | Sesotho | sot
sw  | swh_Latn | Swahili | swa swh
ta  | tam_Taml | Tamil | tam
te  | tel_Telu | Telugu | tel
tn  | tsn_Latn | Setswana | tsn
ts  | tso_Latn | Xitsonga | tso
tum | tum_Latn | Tumbuka
tw  | twi_Latn | Twi
ur  | urd_Arab | Urdu | urd
vi  | vie_Latn | Vietnamese | vie
wo  | wol_Latn | Wolof | wol
xh  | xho_Latn | Xhosa | xho
yo  | yor_Latn | Yoruba | yor
zh  | zho_Hans | Chinese | zho zho_Hant cmn cmn_Hans cmn_Hant
zu  | zul_Latn | Zulu | zul
""")

_UNSEEN = _rows(False, """
af | afr_Latn | Afrikaans | afr
am | amh_Ethi | Amharic | amh
be | bel_Cyrl | Belarusian | bel
cy | cym_Latn | Welsh | cym
ga | gle_Latn | Irish | gle
gd | gla_Latn | Scottish Gaelic | gla
gl | glg_Latn | Galician | glg
ha | hau_Latn | Hausa | hau
ka | kat_Geor | Georgian | kat
kk | kaz_Cyrl | Kazakh | kaz
km | khm_Khmr | Khmer | khm
ky | kir_Cyrl | Kyrgyz | kir
li | lim_Latn | Limburgish | lim
my | mya_Mymr | Burmese | mya
nb | nob_Latn | Norwegian Bokmål | nob
nn | nno_Latn | Norwegian Nynorsk | nno
oc | oci_Latn | Occitan | oci
si | sin_Sinh | Sinhala | sin
tg | tgk_Cyrl | Tajik | tgk
tk | tuk_Latn | Turkmen | tuk
tt | tat_Cyrl | Tatar | tat
ug | uig_Arab | Uyghur | uig
uz | uzn_Latn | Uzbek | uzb uzn
yi | ydd_Hebr | Yiddish | yid ydd
de | deu_Latn | German | deu
nl | nld_Latn | Dutch | nld
ru | rus_Cyrl | Russian | rus
""")

LANGUAGES: tuple[Language, ...] = tuple(_SEEN + _UNSEEN)
# The paper's BLOOMZ+24 set, in its order.
PAPER_UNSEEN_24 = ("af am be cy ga gd gl ha ka kk km ky li my nb nn oc si tg tk tt ug uz yi").split()
# BLOOMZ+3: unseen de/nl/ru, and the seen languages of its zero-shot tests.
PAPER_UNSEEN_3 = ("de", "nl", "ru")
PAPER_ZERO_SHOT_SEEN = ("ar", "fr", "zh")

# FLORES-200's 204 language-script codes (the dataset's README): NLLB-200's 202 plus arb_Latn and min_Arab.
FLORES200_CODES = tuple("""
ace_Arab ace_Latn acm_Arab acq_Arab aeb_Arab afr_Latn ajp_Arab aka_Latn amh_Ethi apc_Arab arb_Arab arb_Latn
ars_Arab ary_Arab arz_Arab asm_Beng ast_Latn awa_Deva ayr_Latn azb_Arab azj_Latn bak_Cyrl bam_Latn ban_Latn
bel_Cyrl bem_Latn ben_Beng bho_Deva bjn_Arab bjn_Latn bod_Tibt bos_Latn bug_Latn bul_Cyrl cat_Latn ceb_Latn
ces_Latn cjk_Latn ckb_Arab crh_Latn cym_Latn dan_Latn deu_Latn dik_Latn dyu_Latn dzo_Tibt ell_Grek eng_Latn
epo_Latn est_Latn eus_Latn ewe_Latn fao_Latn fij_Latn fin_Latn fon_Latn fra_Latn fur_Latn fuv_Latn gaz_Latn
gla_Latn gle_Latn glg_Latn grn_Latn guj_Gujr hat_Latn hau_Latn heb_Hebr hin_Deva hne_Deva hrv_Latn hun_Latn
hye_Armn ibo_Latn ilo_Latn ind_Latn isl_Latn ita_Latn jav_Latn jpn_Jpan kab_Latn kac_Latn kam_Latn kan_Knda
kas_Arab kas_Deva kat_Geor kaz_Cyrl kbp_Latn kea_Latn khk_Cyrl khm_Khmr kik_Latn kin_Latn kir_Cyrl kmb_Latn
kmr_Latn knc_Arab knc_Latn kon_Latn kor_Hang lao_Laoo lij_Latn lim_Latn lin_Latn lit_Latn lmo_Latn ltg_Latn
ltz_Latn lua_Latn lug_Latn luo_Latn lus_Latn lvs_Latn mag_Deva mai_Deva mal_Mlym mar_Deva min_Arab min_Latn
mkd_Cyrl mlt_Latn mni_Beng mos_Latn mri_Latn mya_Mymr nld_Latn nno_Latn nob_Latn npi_Deva nso_Latn nus_Latn
nya_Latn oci_Latn ory_Orya pag_Latn pan_Guru pap_Latn pbt_Arab pes_Arab plt_Latn pol_Latn por_Latn prs_Arab
quy_Latn ron_Latn run_Latn rus_Cyrl sag_Latn san_Deva sat_Beng scn_Latn shn_Mymr sin_Sinh slk_Latn slv_Latn
smo_Latn sna_Latn snd_Arab som_Latn sot_Latn spa_Latn als_Latn srd_Latn srp_Cyrl ssw_Latn sun_Latn swe_Latn
swh_Latn szl_Latn tam_Taml taq_Latn taq_Tfng tat_Cyrl tel_Telu tgk_Cyrl tgl_Latn tha_Thai tir_Ethi tpi_Latn
tsn_Latn tso_Latn tuk_Latn tum_Latn tur_Latn twi_Latn tzm_Tfng uig_Arab ukr_Cyrl umb_Latn urd_Arab uzn_Latn
vec_Latn vie_Latn war_Latn wol_Latn xho_Latn ydd_Hebr yor_Latn yue_Hant zho_Hans zho_Hant zsm_Latn zul_Latn
""".split())
_FLORES_BY_ISO3: dict[str, str] = {}
for _code in FLORES200_CODES:
    _FLORES_BY_ISO3.setdefault(_code.split("_")[0], _code)

LANGUAGES_ENV = "AIT_LANGUAGES"  # a user language file for every command (`--languages FILE` wins)


class UnknownLanguage(AitError):
    pass


# ---------------------------------------------------------------------------------------------- the registry
class _Registry:
    """Every language lookup goes through here: user languages, then built-in, then the library."""

    def __init__(self) -> None:
        self.by_key: dict[str, Language] = {}
        self.by_name: dict[str, Language] = {}
        self.user: list[Language] = []
        self.user_file: str | None = None
        for lang in LANGUAGES:
            self._index(lang)

    def _index(self, lang: Language) -> None:
        iso3 = lang.flores.split("_")[0] if lang.flores else None  # ar's arb (arb_Arab), ne's npi, ...
        for key in (lang.code, lang.flores, *lang.aliases, iso3):
            if key:
                self.by_key[key.lower()] = lang
        self.by_name[lang.name.lower()] = lang

    def add_user(self, langs: list[Language], path: str) -> None:
        for lang in langs:  # (read_language_file already merged an override with the language it renames)
            old = self.by_key.get(lang.code.lower())
            if old is not None and old.code == lang.code:
                self.by_name.pop(old.name.lower(), None)  # the old name no longer names it
            self._index(lang)
            self.user.append(lang)
        self.user_file = path
        _library_language.cache_clear()


_REGISTRY: _Registry | None = None
# codes records.py found in the table (its fast path; bounded by the distinct codes in use): emptied whenever
# the table changes, so every code is checked again against the new one
CHECKED_CODES: set[str] = set()


def _registry() -> _Registry:
    """The registry, with the AIT_LANGUAGES file loaded on first use (commands load `--languages` first)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _Registry()
        env_file = os.environ.get(LANGUAGES_ENV)
        if env_file:
            _REGISTRY.add_user(read_language_file(env_file), env_file)
    return _REGISTRY


def use_language_file(path: str) -> None:
    """Load the languages of a user file for this process (`--languages FILE`; it replaces an AIT_LANGUAGES
    file): the one call that changes which languages exist. The command layer makes it before it builds a
    stage's options (so that the options can name the file's codes); a library user makes it the same way.
    Processes you start see the file only through their environment (`child_environment`)."""
    global _REGISTRY
    langs = read_language_file(path)
    _REGISTRY = _Registry()
    _REGISTRY.add_user(langs, path)
    CHECKED_CODES.clear()


def reset_languages() -> None:
    """Back to the built-in table, the library and the AIT_LANGUAGES file (tests; a library user switching
    files)."""
    global _REGISTRY
    _REGISTRY = None
    CHECKED_CODES.clear()


def user_language_file() -> str | None:
    """The user language file this process uses (absolute), or None: what a process it starts must load."""
    path = _registry().user_file
    return str(Path(path).resolve()) if path else None


def child_environment() -> dict[str, str]:
    """The environment entry that hands this process's user language file to a process it starts (training
    ranks): {AIT_LANGUAGES: its absolute path}, or nothing when none is loaded."""
    path = user_language_file()
    return {LANGUAGES_ENV: path} if path else {}


def _language_file_option(path: str) -> str:
    """The `languages` option's value, checked (FILE:LINE for a bad row) but not loaded: see
    `use_language_file`. The file this process has loaded is not read again (a command loads `--languages`
    just before it builds the options: `command_factory.load_language_file`)."""
    loaded = _REGISTRY.user_file if _REGISTRY is not None else None
    if path != loaded:
        read_language_file(path)
    return path


def languages_field() -> Optional[str]:
    """The `languages` option field (`--languages FILE`) of every command that reads language codes."""
    return option(
        None, metavar="FILE", parse=_language_file_option, default_doc=f"${LANGUAGES_ENV}",
        help=f"Your languages: a TSV file with columns code, flores, name (optional seen, override) that adds "
             f"languages (private-use codes such as qxx) or renames them in prompts. Default: the file in "
             f"${LANGUAGES_ENV}, if set.", details="See [languages.md](languages.md).")


@dataclass(kw_only=True)
class LanguagesOption:
    """`--languages FILE` (first, so that a bad file is the error shown before the codes it would define)."""

    languages: Optional[str] = languages_field()

    def __post_init__(self) -> None:
        check_options(self)


# ---------------------------------------------------------------------------------------------- user files
USER_COLUMNS = ("code", "flores", "name", "seen", "override")
_YES, _NO = ("yes", "true", "1", "y"), ("no", "false", "0", "n", "")


def read_language_file(path: str) -> list[Language]:
    """The languages of a user TSV file (header: code, flores, name, optional seen and override). A bad
    file is an error naming FILE:LINE: a missing column, a duplicate code, or a code or name that is
    already a different language without `override: yes`."""
    if not Path(path).is_file():
        raise AitError(f"{path}: no such language file")
    rows = iter(iter_lines(path, skip_blank=True))
    try:
        header_line, header = next(rows)
    except StopIteration:
        raise AitError(f"{path}: empty language file", hint="the first line names the columns: code, flores, "
                       "name (and optionally seen, override)") from None
    columns = [c.strip().lower() for c in header.split("\t")]
    missing = [c for c in ("code", "flores", "name") if c not in columns]
    if missing:
        raise InputError(path, header_line, f"missing column(s) {', '.join(missing)} (tab-separated header: "
                         "code, flores, name, optional seen and override)")
    unknown = [c for c in columns if c not in USER_COLUMNS]
    if unknown:
        raise InputError(path, header_line, f"unknown column(s) {', '.join(unknown)}")
    base = _Registry()  # built-in + library: what an entry may clash with
    seen_codes: dict[str, int] = {}
    out = []
    for line_no, text in rows:
        if text.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in text.split("\t")]
        if len(cells) > len(columns):
            raise InputError(path, line_no, f"{len(cells)} columns, the header has {len(columns)}")
        row = dict(zip(columns, cells + [""] * (len(columns) - len(cells))))
        code, flores, name = row["code"], row["flores"], row["name"]
        for column in ("code", "name"):
            if not row[column]:
                raise InputError(path, line_no, "empty", field=column)
        if code.lower() in seen_codes:
            raise InputError(path, line_no, f"code {code!r} is given twice (first on line {seen_codes[code.lower()]})",
                             field="code")
        seen_codes[code.lower()] = line_no
        override = _flag(row.get("override", ""), path, line_no, "override")
        declared = _flag(row["seen"], path, line_no, "seen") if row.get("seen", "").strip() else None
        old = base.by_key.get(code.lower()) or _library_language(code.lower())
        if old is not None and old.name != name and not override:
            raise InputError(path, line_no, f"code {code!r} is already {old.name} ({old.source}), not {name}",
                             field="code", hint="to rename it in prompts, add a column `override` with yes")
        same_name = base.by_name.get(name.lower())
        if same_name is not None and same_name.code != code and not override:
            raise InputError(path, line_no, f"name {name!r} is already the language {same_name.code}", field="name",
                             hint="use that code, or mark the row override: yes")
        canonical = old.code if old is not None else code
        keys = (*(old.aliases if old is not None else ()), code, flores)  # an override keeps the old codes
        out.append(Language(canonical, flores or (old.flores if old else None), name,
                            seen=old.seen if old is not None else False,
                            aliases=tuple(k for k in dict.fromkeys(keys) if k and k != canonical),
                            source=str(path), declared_seen=declared))
    return out


def _flag(value: str, path: str, line_no: int, column: str) -> bool:
    value = value.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise InputError(path, line_no, f"expected yes or no, not {value!r}", field=column)


# ---------------------------------------------------------------------------------------------- library
def _clean_name(name: str) -> str:
    return name.replace(" (individual language)", "").replace(" (macrolanguage)", "")


@lru_cache(maxsize=4096)
def _library_language(key: str) -> Language | None:
    """An ISO 639-1 / 639-3 code or a FLORES-200 code the built-in table lacks, through langcodes."""
    flores = None
    if "_" in key:  # a FLORES code: xxx_Scrp
        matches = [c for c in FLORES200_CODES if c.lower() == key]
        if not matches:
            return None
        flores = matches[0]
        key = flores.split("_")[0]
    if not (2 <= len(key) <= 3 and key.isalpha() and key.isascii()):
        return None
    try:
        import langcodes  # lazy: 20 ms of tables, only for a code outside the built-in table
    except ImportError:  # pragma: no cover - a dependency; a broken install should not hide the built-ins
        return None
    try:
        found = langcodes.Language.get(key)
    except (ValueError, LookupError):
        return None
    if not found.is_valid() or found.language in (None, "und", "mis", "mul", "zxx"):
        return None
    name = found.display_name("en")
    if name.lower().startswith("unknown language"):
        return None
    tag = langcodes.standardize_tag(key)
    code = tag if "-" not in tag else key  # a region in the tag (prs → fa-AF): keep the 639-3 code
    iso3 = found.to_alpha3()
    return Language(code, flores or _FLORES_BY_ISO3.get(iso3) or _FLORES_BY_ISO3.get(key), _clean_name(name),
                    seen=False, aliases=tuple(a for a in dict.fromkeys((key, iso3)) if a != code), source=LIBRARY)


# ---------------------------------------------------------------------------------------------- lookup
def find_language(code: str) -> Language | None:
    """The language for an ISO code, FLORES code or English name (case-insensitive), or None."""
    key = code.strip().lower()
    reg = _registry()
    lang = reg.by_key.get(key) or reg.by_name.get(key) or reg.by_key.get(key.replace("-", "_"))
    if lang is not None:
        return lang
    lang = _library_language(key.replace("-", "_"))
    if lang is not None:  # the same language by its canonical code, when the table or a user file has it
        return reg.by_key.get(lang.code.lower(), lang)
    return None


def get_language(code: str) -> Language:
    """Like `find_language`, but an unknown code raises `UnknownLanguage` suggesting near matches."""
    lang = find_language(code)
    if lang is None:
        raise UnknownLanguage(f"unknown language {code!r}", hint=suggest_language(code))
    return lang


def suggest_language(code: str) -> str:
    reg = _registry()
    keys = list(reg.by_key) + list(reg.by_name)
    near = difflib.get_close_matches(code.strip().lower(), keys, n=4, cutoff=0.6)
    names = []
    for key in near:
        lang = find_language(key)
        label = f"{lang.code} ({lang.flores}, {lang.name})"
        if label not in names:
            names.append(label)
    listing = ("use an ISO 639-1, ISO 639-3 or FLORES-200 code (`ait languages --search TEXT` finds one), or "
               f"add the language in a file: --languages FILE or {LANGUAGES_ENV}")
    return f"did you mean {', '.join(names)}? {listing}" if names else listing


def language_name(code: str) -> str:
    return get_language(code).name


def is_seen(code: str) -> bool:
    """Seen in BLOOM's pre-training (see `seen_list` for other models)."""
    return get_language(code).seen


def all_languages(*, library: bool = False) -> list[Language]:
    """User languages, the built-in table and every FLORES-200 language; with `library`, also every ISO
    639 code langcodes knows (about 8,000)."""
    reg = _registry()
    out: dict[str, Language] = {}
    for lang in [*reg.user, *LANGUAGES]:
        out.setdefault(lang.code, find_language(lang.code) or lang)
    for code in FLORES200_CODES:
        lang = find_language(code)
        if lang is not None:
            out.setdefault(lang.code, lang)
    if library:
        for code in _library_codes():
            lang = find_language(code)
            if lang is not None:
                out.setdefault(lang.code, lang)
    return list(out.values())


def _library_codes() -> list[str]:
    """Every language subtag language-data names (ISO 639-1 and 639-3 codes, some 639-2/5 ones too)."""
    from language_data.name_data import CODE_TO_NAMES  # lazy: a large table, only for --all and --search

    return sorted(k for k in CODE_TO_NAMES if 2 <= len(k) <= 3 and k.isalpha() and k.islower())


# ---------------------------------------------------------------------------------------------- listing
@dataclass(kw_only=True)
class ListOptions(LanguagesOption):
    """The options of `ait languages`."""

    seen: bool = option(False, help="Only languages seen in BLOOM's pre-training (and those a user file "
                        "declares seen).")
    unseen: bool = option(False, help="Only languages unseen by BLOOM.")
    search: Optional[str] = option(None, metavar="TEXT", help="Only languages whose code, FLORES-200 code or "
                                   "name contains TEXT (case-insensitive), among every language ait knows, the "
                                   "library's ISO 639 codes included.")
    flores: bool = option(False, help="One row per FLORES-200 code (all 204, every script variant).")
    all: bool = option(False, help="Also every ISO 639-1 / 639-3 language of the langcodes library (about "
                       "8,000; by default: the built-in table, your languages and FLORES-200).")
    format: Literal["table", "tsv"] = option("table", help="table for people; tsv (with a header) for scripts.")


def list_languages(options: ListOptions) -> list[tuple[Language, str]]:
    """(language, its FLORES-200 code in this row) for `ait languages`, filtered by `options`."""
    seen = bloom_seen().codes
    if options.flores:
        rows = [(find_language(code), code) for code in FLORES200_CODES]
    else:
        rows = [(lang, lang.flores) for lang in all_languages(library=options.all or bool(options.search))]
    out = []
    needle = (options.search or "").strip().lower()
    for lang, flores in rows:
        if lang is None:
            continue
        if options.seen and lang.code not in seen or options.unseen and lang.code in seen:
            continue
        if needle and not any(needle in (key or "").lower() for key in (lang.code, flores, lang.name, *lang.aliases)):
            continue
        out.append((lang, flores or ""))
    return out if options.flores else sorted(out, key=lambda row: row[0].code)


# ---------------------------------------------------------------------------------------------- seen
@dataclass(frozen=True)
class SeenList:
    """Which languages a base model saw in pre-training: the split of the seen/unseen score groups."""

    name: str  # "bloom", "--seen", or the user file
    codes: frozenset[str]  # canonical codes

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and get_language(code).code in self.codes


BLOOM_FAMILY = ("bloom",)  # config.model_type / model-name stems whose seen list is BLOOM's


def bloom_seen() -> SeenList:
    """BLOOM's list (built in), with a user file's `seen` column for its own languages."""
    codes = {lang.code for lang in LANGUAGES if lang.seen}
    for lang in _registry().user:
        if lang.declared_seen is not None:
            (codes.add if lang.declared_seen else codes.discard)(lang.code)
    return SeenList("bloom", frozenset(codes))


def is_bloom_model(model: str | None) -> bool:
    """Whether a model id or directory is BLOOM/BLOOMZ (by its config's model_type, else its name)."""
    if not model:
        return False
    config = Path(model).expanduser() / "config.json"
    if config.is_file():
        try:
            return json.loads(config.read_text(encoding="utf-8")).get("model_type") in BLOOM_FAMILY
        except (OSError, ValueError):
            return False
    return any(stem in Path(model.rstrip("/")).name.lower() for stem in BLOOM_FAMILY)


def seen_list(models: Iterable[str | None] = (), declared: Iterable[str] | None = None) -> SeenList | None:
    """The seen list of a run: `declared` codes (`--seen`) when given; else, when every model is BLOOM or
    none is named (ait's default family), BLOOM's; else a user file's `seen` column when it has one; else
    None (seen/unseen cannot be told: the caller omits those groups and says so)."""
    if declared is not None:
        return SeenList("--seen", frozenset(get_language(c).code for c in declared))
    named = [m for m in models if m]
    if all(is_bloom_model(m) for m in named):
        return bloom_seen()
    user = [lang for lang in _registry().user if lang.declared_seen is not None]
    if user:
        return SeenList(_registry().user_file or "user file",
                        frozenset(lang.code for lang in user if lang.declared_seen))
    return None


def direction_groups(src: str, tgt: str, seen: SeenList | None | str = "bloom") -> list[str]:
    """The paper's direction groups a direction belongs to (e.g. 'en→xx', 'seen→unseen', 'en→unseen'):
    seen/unseen by `seen` (BLOOM's list by default); with `seen=None` only en→xx and xx→en."""
    s, t = get_language(src), get_language(tgt)
    split = bloom_seen() if seen == "bloom" else seen

    def kind(lang: Language) -> str:
        return "seen" if lang.code in split.codes else "unseen"  # type: ignore[union-attr]

    if s.code == "en":
        return ["en→xx"] + (["en→" + kind(t)] if split else [])
    if t.code == "en":
        return ["xx→en"] + ([kind(s) + "→en"] if split else [])
    return [kind(s) + "→" + kind(t)] if split else []
