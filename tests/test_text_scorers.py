"""The text scorers (structure, lexical) and their tokenisation on Korean, Chinese, German, Dutch and
more: word counts are sane, a relevant answer beats an unrelated one in the same language, and
emoji, mixed scripts and right-to-left text do not break anything."""

from __future__ import annotations

import pytest

from stephanie_ray.scoring.base import Item
from stephanie_ray.scoring.scorers import LexicalScorer, StructureScorer, content_terms, words
from stephanie_ray.scoring.text import word_length_deviation

# (prompt, relevant answer, unrelated answer in the same language)
CASES = {
    "ko": (
        "웹 애플리케이션을 구글 클라우드에 배포하는 방법을 알려주세요.",
        "Django 웹 애플리케이션을 구글 클라우드 Run에 배포하려면 먼저 Dockerfile을 작성하세요. 그다음 gcloud 명령으로 "
        "이미지를 빌드하고 클라우드 Run 서비스에 배포합니다. 데이터베이스는 Cloud SQL을 사용하고, 환경 변수로 "
        "비밀 키를 설정하세요. 마지막으로 배포된 앱의 URL을 확인하면 됩니다.",
        "김치찌개를 맛있게 끓이려면 잘 익은 김치와 돼지고기를 준비하세요. 냄비에 기름을 두르고 고기를 볶은 뒤 "
        "김치를 넣고 함께 볶습니다. 물을 붓고 30분 정도 끓이면 맛있는 찌개가 완성됩니다.",
    ),
    "zh": (
        "如何把网站应用部署到谷歌云？",
        "要把Django应用部署到谷歌云，首先编写Dockerfile并构建镜像。然后使用gcloud命令把镜像推送到容器仓库，"
        "再部署到Cloud Run服务。数据库可以使用Cloud SQL，密钥通过环境变量配置。最后检查应用的访问地址。",
        "红烧肉的做法很简单。先把五花肉切块焯水，然后锅里放糖炒出糖色。加入肉块翻炒上色，再加酱油和清水，"
        "小火炖一个小时。最后大火收汁就可以出锅了。",
    ),
    "de": (
        "Wie kann ich meine Django-Anwendung auf Google Cloud bereitstellen?",
        "Um eine Django-Anwendung auf Google Cloud bereitzustellen, erstellst du zuerst ein Dockerfile. "
        "Danach baust du das Image mit gcloud und stellst die Anwendung auf Cloud Run bereit. Die Datenbank "
        "läuft am besten auf Cloud SQL, und geheime Schlüssel setzt du als Umgebungsvariablen.",
        "Für einen klassischen Apfelkuchen brauchst du Mehl, Butter, Zucker und säuerliche Äpfel. Knete den "
        "Teig, lass ihn ruhen und belege ihn mit Apfelscheiben. Backe den Kuchen etwa vierzig Minuten im Ofen.",
    ),
    "nl": (
        "Hoe kan ik mijn Django-applicatie naar Google Cloud deployen?",
        "Om je Django-applicatie naar Google Cloud te deployen, schrijf je eerst een Dockerfile. Daarna bouw je "
        "de image met gcloud en deploy je de applicatie naar Cloud Run. De database draait op Cloud SQL en "
        "geheime sleutels zet je in omgevingsvariabelen.",
        "Voor een goede appeltaart heb je bloem, boter, suiker en zure appels nodig. Kneed het deeg, laat het "
        "rusten en bekleed de vorm. Bak de taart ongeveer een uur in de oven tot hij goudbruin is.",
    ),
}

MESSY = [
    "🎉🎉🎉",
    "Great job 👍🏽 — 好的！잘했어요 🚀 مرحبا بالعالم",
    "مرحبا! كيف يمكنني نشر تطبيق جانغو على جوجل كلاود؟ استخدم Cloud Run.",
    "\u200f\u202bשלום עולם\u202c ok",
    "हिन्दी में उत्तर दें। धन्यवाद।",
    "```python\nprint('héllo wörld')\n```",
    "",
    "   \n\n  ",
    "a\u0301\u0301\u0301 ﷽ 𝒳𝒴𝒵 \U0002a6a5\U0002a6a6",
]


def _rel(prompt: str, answer: str, goal: str = "") -> float:
    item = Item("turn", 1, answer, prompt=prompt, goal=goal)
    return LexicalScorer().score([item], ["relevance"])[0]["relevance"].value


# ----------------------------------------------------------------------------- tokenisation


def test_word_counts_are_sane():
    assert words("Django 앱을 구글 클라우드에 배포하는 방법") == ["Django", "앱을", "구글", "클라우드에", "배포하는", "방법"]
    # Han / Kana: one word per two characters
    assert words("如何把Django应用部署到谷歌云") == ["如何", "把", "Django", "应用", "部署", "到谷", "歌云"]
    assert len(words("Wie kann ich meine Django-Anwendung bereitstellen?")) == 6
    assert len(words("Hoe kan ik mijn Django-applicatie deployen?")) == 6
    # combining marks stay inside words (Devanagari, Arabic harakat); emoji are not words
    assert words("हिन्दी में") == ["हिन्दी", "में"] and words("كَتَبَ 🎉") == ["كَتَبَ"]
    ko, zh = CASES["ko"][1], CASES["zh"][1]
    assert 30 <= len(words(ko)) <= 45  # 38 eojeol (the ASCII tokeniser saw 10)
    assert 40 <= len(words(zh)) <= 60  # 96 characters -> about 50 words (the ASCII tokeniser saw 6)


def test_content_terms_multilingual():
    ko = content_terms("Django를 구글 클라우드에 배포하는 방법을 알려주세요.")
    assert {"django", "구글", "클라", "우드", "배포"} <= ko
    assert not {"를", "방법", "알려", "하는"} & ko  # particles, endings and stop stems are not terms
    assert content_terms("장고를") == content_terms("장고는") == {"장고"}
    zh = content_terms("我想把Django部署到谷歌云上")
    assert {"django", "部署", "谷歌"} <= zh and not any("我" in t or "到" in t for t in zh)
    ja = content_terms("DjangoをGoogle Cloudにデプロイする方法")
    assert {"django", "google", "デプ", "方法"} <= ja and not any("す" in t for t in ja)
    assert content_terms("Datenbank Datenbanken") == {"datenb"}  # 6-letter stems join inflections
    assert content_terms("Ich kann das nicht und die Anwendung") == {"anwend"}  # German stop words
    assert content_terms("Hoe kan ik dit niet maar het deployen") == {"deploy"}  # Dutch stop words
    assert content_terms("ＤＪＡＮＧＯ Django") == {"django"}  # NFKC + casefold


def test_word_length_against_script():
    assert word_length_deviation(words("deploy the django app")) == pytest.approx((6 + 3 + 6 + 3) / 4 - 5)
    assert abs(word_length_deviation(words(CASES["ko"][1]))) < 1.5
    assert word_length_deviation(words("部署应用")) == 0.0
    assert word_length_deviation([]) == 0.0


@pytest.mark.parametrize("text", MESSY)
def test_no_crash_on_messy_text(text):
    item = Item("turn", 1, text, prompt=text, goal="Django 배포 部署")
    s = StructureScorer().score([item], ["clarity", "implementability"])[0]
    assert all(0.0 <= v.value <= 1.0 for v in s.values())
    r = LexicalScorer().score([item], ["relevance"])[0]["relevance"]
    assert 0.0 <= r.value <= 1.0
    content_terms(text)
    words(text)


# ----------------------------------------------------------------------------- lexical relevance


@pytest.mark.parametrize("lang", sorted(CASES))
def test_relevant_beats_unrelated(lang):
    prompt, good, bad = CASES[lang]
    rg, rb = _rel(prompt, good, goal=prompt), _rel(prompt, bad, goal=prompt)
    assert rg >= 0.8 and rb <= 0.2, (rg, rb)


def test_relevance_across_languages_is_not_all_or_nothing():
    # a Korean question answered in Korean with English product names still covers the names
    r = _rel("Django 앱을 구글 클라우드에 배포", "Use Cloud Run: gcloud run deploy my-django-app")
    assert 0.0 < r < 1.0


# ----------------------------------------------------------------------------- structure


@pytest.mark.parametrize("lang", sorted(CASES))
def test_clarity_of_ordinary_prose_is_not_penalised_by_script(lang):
    """A plain paragraph in any language reads at least about as clearly as its English counterpart
    (the Korean one is shorter in words — eojeol carry particles — so it needs no structure marks)."""
    english = ("To deploy a Django application to Google Cloud, first write a Dockerfile. Then build the image "
               "with gcloud and deploy it to Cloud Run. The database runs on Cloud SQL, and secret keys go into "
               "environment variables. Finally check the URL of the deployed application.")
    en = StructureScorer.clarity(english).value
    other = StructureScorer.clarity(CASES[lang][1]).value
    assert other > en - 0.1, (lang, other, en)


def test_clarity_korean_structure_needs_marks():
    """Long unstructured text is penalised in Korean as in English: words are counted, not 3 per answer."""
    wall = " ".join([CASES["ko"][1]] * 4)
    listed = "\n\n".join(f"- {CASES['ko'][1]}" for _ in range(4))
    assert StructureScorer.clarity(listed).value > StructureScorer.clarity(wall).value


def test_implementability_numbers_next_to_cjk_and_hangul():
    s = StructureScorer.implementability("메모리 8GB, 10분 정도 걸립니다. 内存8GB，大约10分钟。")
    assert "4 numbers" in s.rationale
    assert "0 numbers" in StructureScorer.implementability("use utf8 and v2 of the api").rationale
    steps = "1. 设置项目\n2. 编写 Dockerfile\n3. 运行 `gcloud run deploy`\n4. 检查 URL"
    assert StructureScorer.implementability(steps).value > StructureScorer.implementability(CASES["zh"][2]).value
