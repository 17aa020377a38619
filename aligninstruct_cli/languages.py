"""The one language table: ISO 639-1 (or 639-3 where none exists) ↔ FLORES-200 code ↔ English name
↔ seen in BLOOM's pre-training.

"Seen" follows the BLOOM model card's language list (45 codes; the card counts 46 languages because
Chinese is split into simplified and traditional). "Unseen" are the paper's 24 BLOOMZ+24 languages plus
German, Dutch and Russian (BLOOMZ+3). English names are the ones used inside prompts.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from aligninstruct_cli.errors import AitError


@dataclass(frozen=True)
class Language:
    code: str  # canonical: ISO 639-1 where it exists, else ISO 639-3
    flores: str  # FLORES-200 code, e.g. kaz_Cyrl
    name: str  # English name, as written in prompts
    seen: bool  # among BLOOM's pre-training languages
    aliases: tuple[str, ...] = ()  # extra codes accepted (other FLORES scripts, 639-3)

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

# The demo's made-up languages (aligninstruct_cli/demo/toylang.py), on ISO 639-3 local-use codes: the
# demo base model is trained on Sunlandic ("seen") and taught Moonlandic ("unseen") with LoRA.
_DEMO = _rows(True, "qaa | qaa_Latn | Sunlandic") + _rows(False, "qab | qab_Latn | Moonlandic")

LANGUAGES: tuple[Language, ...] = tuple(_SEEN + _UNSEEN + _DEMO)
# The paper's BLOOMZ+24 set, in its order.
PAPER_UNSEEN_24 = ("af am be cy ga gd gl ha ka kk km ky li my nb nn oc si tg tk tt ug uz yi").split()
# BLOOMZ+3: unseen de/nl/ru, and the seen languages of its zero-shot tests.
PAPER_UNSEEN_3 = ("de", "nl", "ru")
PAPER_ZERO_SHOT_SEEN = ("ar", "fr", "zh")

_BY_KEY: dict[str, Language] = {}
for _lang in LANGUAGES:
    for _key in (_lang.code, _lang.flores, *_lang.aliases):
        _BY_KEY[_key.lower()] = _lang
_BY_NAME = {lang.name.lower(): lang for lang in LANGUAGES}


class UnknownLanguage(AitError):
    pass


def find_language(code: str) -> Language | None:
    """The language for an ISO code, FLORES code or English name (case-insensitive), or None."""
    key = code.strip().lower()
    return _BY_KEY.get(key) or _BY_NAME.get(key) or _BY_KEY.get(key.replace("-", "_"))


def get_language(code: str) -> Language:
    """Like `find_language`, but an unknown code raises `UnknownLanguage` suggesting near matches."""
    lang = find_language(code)
    if lang is None:
        raise UnknownLanguage(f"unknown language {code!r}", hint=_suggest(code))
    return lang


def _suggest(code: str) -> str:
    keys = list(_BY_KEY) + list(_BY_NAME)
    near = difflib.get_close_matches(code.strip().lower(), keys, n=4, cutoff=0.6)
    names = []
    for key in near:
        lang = find_language(key)
        label = f"{lang.code} ({lang.flores}, {lang.name})"
        if label not in names:
            names.append(label)
    listing = "use an ISO 639-1 code or FLORES-200 code; `ait languages` lists them all"
    return f"did you mean {', '.join(names)}? {listing}" if names else listing


def language_name(code: str) -> str:
    return get_language(code).name


def is_seen(code: str) -> bool:
    return get_language(code).seen


def direction_groups(src: str, tgt: str) -> list[str]:
    """The paper's direction groups a direction belongs to (e.g. 'en→xx', 'seen→unseen', 'en→unseen')."""
    s, t = get_language(src), get_language(tgt)
    groups = []
    if s.code == "en":
        groups += ["en→xx", "en→" + ("seen" if t.seen else "unseen")]
    elif t.code == "en":
        groups += ["xx→en", ("seen" if s.seen else "unseen") + "→en"]
    else:
        groups.append(("seen" if s.seen else "unseen") + "→" + ("seen" if t.seen else "unseen"))
    return groups
