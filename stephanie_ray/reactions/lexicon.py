"""The multilingual lexicon of the ``rules`` backend: data only, one dict per language.

Each language lists phrases in seven categories (all matched on normalised text: NFKC, casefolded,
apostrophes dropped, accents stripped from Latin letters — so "doesn't", "doesnt" and "Doesn’t"
are one phrase, and so are "não"/"nao", "ça"/"ca"):

``complain``        the person says the answer failed or missed: "doesn't work", "still", "nothing
                    happens", "not what I asked", "you misunderstood", "I'd rather", "rather than",
                    "but I get" — matched anywhere in the message;
``complain_open``   words that complain only when they open the message and are followed by a
                    break ("No." / "no, ..." but not "No explanation necessary");
``problem``         weaker words that report a problem ("error", "it fails") — they also
                    appear when an answer *helped* find a bug, so an approval outweighs them;
``thanks``          gratitude ("thanks", "merci", "감사합니다") in the message's first ``approve_window``
                    characters: approval even inside a question ("thanks, how do I add X?");
``approve``         approval *about the answer* ("that works", "this helped"), looked for in the
                    message's first ``approve_window`` characters, outside questions ("does it work?")
                    and not right after a negation ("not helpful", "안 됐어요");
``approve_open``    bare adjectives ("perfect", "great") that approve only when they open the
                    message ("Great, thanks!" but not "buy a great amount of the products");
``asks_output``     looked for in the *answer*: the assistant asks the person to run something and
                    paste / share / send the output ("paste the traceback", "let me know what it
                    prints", "incollami l'output"), so a pasted log is the reply it asked for. Bare
                    nouns ("the output") are not enough: answers say "the output will be ..." too.

Phrase syntax: plain text; a trailing ``*`` means "any ending" (a stem: ``misunderst*``); ``...``
means "up to 40 characters of anything" (``but i ... get``). Languages whose words are not
separated by spaces (``spaced: False``: Chinese, Japanese, and Korean, whose particles glue onto
words) are matched as substrings; the others on word boundaries (``\\w`` is Unicode-aware).

Phrases are chosen to avoid collisions across languages, since every message is matched against
every language (no language identification): Italian "continua" (= go on) is not a Portuguese
complaint here, Spanish "sigue" (= go on) only in "sigue sin", "sigue dando", ...
"""

from __future__ import annotations

LEXICON: dict[str, dict[str, object]] = {
    # ---------------------------------------------------------------- English
    "en": {
        "spaced": True,
        "complain": [
            "are you sure", "you sure?", "doesn't work", "does not work", "didn't work", "did not work",
            "not working", "isn't working", "won't work", "dont work", "don't work", "stopped working", "not work",
            "doesn't do anything", "still", "nothing happens", "nothing happened", "nothing changed",
            "nothing changes", "doesn't change", "does not change", "didn't change", "did not change", "no change",
            "no effect", "not what i asked", "not what i meant", "not what i wanted", "not what i need",
            "that's not what", "that's not it", "that is not", "that's not right", "not quite", "not correct",
            "not right", "you misunderst*", "misunderstood", "i meant", "i said", "i asked for", "i asked you",
            "i told you", "wrong", "incorrect", "you forgot", "you missed", "you ignored", "you didn't",
            "you did not", "hallucinat*", "made up", "doesn't compile", "won't compile", "doesn't run",
            "does not run", "i'd rather", "i would rather", "rather than", "would prefer", "i'd prefer",
            "but i get", "but i got", "but i ... get", "but it gives", "but it returns", "but it says",
            "but it shows", "same error", "same issue", "same problem", "same result", "still the same",
            "doesn't help", "didn't help", "not helpful", "useless", "makes no sense", "doesn't make sense",
            "that's wrong", "not the same", "it broke", "broke",
        ],
        "complain_open": ["no", "nope", "nah", "wrong", "hmm no", "ugh", "huh"],
        "problem": [
            "error", "errors", "exception", "fails", "failed", "failing", "bug", "crash*", "broken", "issue",
            "problem", "not found", "undefined", "instead", "giving me", "gives me",
        ],
        "thanks": [
            "thanks", "thank you", "thank u", "thx", "tysm", "ty", "cheers", "much appreciated", "appreciate it",
        ],
        "approve": [
            "that works", "it works", "this works", "works now", "works great", "works perfectly", "works fine",
            "working now", "it worked", "that worked", "that did it", "that did the trick", "did the trick",
            "fixed it", "that fixed", "that helped", "this helped", "very helpful", "super helpful", "helpful",
            "solved", "makes sense", "got it", "lgtm", "love it", "spot on", "nailed it", "exactly what i",
            "just what i", "well done", "good job", "nice one",
        ],
        "approve_open": [
            "perfect", "great", "awesome", "excellent", "exactly", "brilliant", "amazing", "nice", "cool",
            "wonderful", "fantastic", "sweet", "yay", "wow", "superb",
        ],
        "asks_output": [
            "paste", "copy and paste", "share the output", "share the error", "share the full", "send me the",
            "post the output", "post the error", "post the full", "show me the output", "show me the error",
            "show me what", "let me know what it", "let me know what you get", "let me know what you see",
            "let me know ... output", "let me know ... error", "tell me what it", "tell me what you see",
            "what does it print", "what it prints", "what do you get", "what you get", "what it says",
            "run ... and share", "run ... and send", "run ... and show", "run ... and tell",
            "run ... and let me know",
        ],
    },
    # ---------------------------------------------------------------- Dutch
    "nl": {
        "spaced": True,
        "complain": [
            "weet je het zeker", "weet je dat zeker", "werkt niet", "werkt nog niet", "werkt het niet",
            "doet het niet", "doet niets", "doet niks", "lukt niet", "lukt nog niet", "nog steeds", "nog altijd",
            "steeds hetzelfde", "er gebeurt niets", "er gebeurt niks", "gebeurt niets", "gebeurt niks",
            "verandert niets", "verandert niks", "verandert niet", "niet wat ik", "dat is niet",
            "dat bedoel ik niet", "bedoelde", "je hebt me verkeerd begrepen", "verkeerd begrepen",
            "begrijpt me niet", "klopt niet", "klopt niks", "fout", "verkeerd", "liever", "in plaats van", "ipv",
            "maar ik krijg", "maar krijg", "maar dan krijg", "zelfde fout", "dezelfde fout", "zelfde probleem",
            "hetzelfde probleem", "slaat nergens op",
        ],
        "complain_open": ["nee", "neen", "nope"],
        "problem": ["foutmelding", "probleem", "crasht", "kapot", "mislukt", "faalt"],
        "thanks": ["dank je", "dankjewel", "dank u", "dankuwel", "bedankt", "thanks"],
        "approve": [
            "het werkt", "werkt nu", "werkt!", "werkt perfect", "werkt prima", "dat werkt", "gelukt",
            "het is gelukt", "opgelost", "dat hielp", "heel duidelijk", "helemaal goed", "precies wat", "top!",
            "lekker",
        ],
        "approve_open": [
            "perfect", "top", "super", "geweldig", "mooi", "prima", "helder", "duidelijk", "klopt", "fantastisch",
            "gaaf", "toppie",
        ],
        "asks_output": [
            "plak", "stuur me de output", "stuur me de foutmelding", "stuur me de uitvoer",
            "laat me weten wat je krijgt", "laat me weten ... output", "laat me weten ... foutmelding",
            "laat ... zien wat", "wat krijg je", "uit en laat", "uit en stuur",
        ],
    },
    # ---------------------------------------------------------------- German
    "de": {
        "spaced": True,
        "complain": [
            "bist du sicher", "sind sie sicher", "funktioniert nicht", "funktioniert immer noch nicht",
            "funktioniert leider nicht", "geht nicht", "geht immer noch nicht", "klappt nicht",
            "klappt leider nicht", "tut sich nichts", "immer noch", "noch immer", "nach wie vor", "passiert nichts",
            "nichts passiert", "es passiert gar nichts", "andert sich nichts", "andert nichts", "andert sich nicht",
            "nicht das was ich", "nicht was ich", "das ist nicht", "das meinte ich nicht", "ich meinte",
            "du hast mich missverstanden", "missverstanden", "falsch verstanden", "falsch", "stimmt nicht",
            "lieber", "statt", "anstatt", "anstelle", "aber ich bekomme", "aber ich kriege", "aber ich erhalte",
            "gleicher fehler", "derselbe fehler", "selbe fehler", "gleiche problem", "gleiches problem",
            "hilft nicht", "bringt nichts", "ergibt keinen sinn",
        ],
        "complain_open": ["nein", "nee", "ne"],
        "problem": ["fehler", "fehlermeldung", "problem", "absturz", "sturzt ab", "kaputt"],
        "thanks": ["danke", "dankeschon", "vielen dank"],
        "approve": [
            "funktioniert!", "es funktioniert", "funktioniert jetzt", "funktioniert perfekt", "funktioniert super",
            "das funktioniert", "klappt!", "klappt jetzt", "es klappt", "das klappt", "lauft jetzt", "lauft!",
            "hat geholfen", "hat funktioniert", "hat geklappt", "gelost", "macht sinn", "verstanden", "genau das",
        ],
        "approve_open": [
            "perfekt", "super", "genau", "prima", "toll", "klasse", "spitze", "sehr gut", "top", "wunderbar",
            "hervorragend", "cool", "geil",
        ],
        "asks_output": [
            "fuge ... ein", "kopiere ... ausgabe", "schick mir ... ausgabe", "schick mir ... fehlermeldung",
            "poste ... ausgabe", "poste ... fehlermeldung", "zeig mir ... ausgabe", "was bekommst du",
            "was gibt es aus", "und schick mir", "und zeig mir",
        ],
    },
    # ---------------------------------------------------------------- French
    "fr": {
        "spaced": True,
        "complain": [
            "tu es sur", "tes sur", "etes-vous sur", "mais j'ai toujours", "mais j'ai une erreur", "ne marche pas",
            "marche pas", "ne fonctionne pas", "fonctionne pas", "ca marche pas", "toujours pas",
            "toujours le meme", "toujours la meme", "j'ai toujours", "ca ne change rien", "ne change rien",
            "ne change pas", "rien ne se passe", "il ne se passe rien", "ne fait rien", "pas ce que j'ai demande",
            "pas ce que je", "ce n'est pas", "c'est pas ca", "tu as mal compris", "vous avez mal compris",
            "mal compris", "je voulais dire", "faux", "incorrect", "errone", "je prefererais", "je prefere que",
            "plutot que", "au lieu de", "mais j'obtiens", "encore une erreur", "la meme erreur", "le meme probleme",
            "n'aide pas",
        ],
        "complain_open": ["non", "bof"],
        "problem": ["erreur", "probleme", "plante", "bug", "echoue"],
        "thanks": ["merci"],
        "approve": [
            "ca marche", "ca fonctionne", "ca a marche", "ca marche!", "fonctionne maintenant", "marche maintenant",
            "ca m'aide", "ca m'a aide", "resolu", "c'est clair", "j'ai compris", "c'est compris", "exactement ce",
        ],
        "approve_open": [
            "parfait", "super", "genial", "nickel", "excellent", "top", "impeccable", "bravo", "formidable", "cool",
            "tres bien",
        ],
        "asks_output": [
            "colle", "collez", "envoie-moi", "envoyez-moi", "partage ... sortie", "partagez ... sortie",
            "montre-moi ... sortie", "dis-moi ce que ... affiche", "dites-moi ce que ... affiche",
            "ce que tu obtiens", "ce que vous obtenez",
        ],
    },
    # ---------------------------------------------------------------- Spanish
    "es": {
        "spaced": True,
        "complain": [
            "estas seguro", "seguro que", "no funciona", "no me funciona", "no funciono", "no sirve", "no anda",
            "sigue sin", "sigue dando", "sigue saliendo", "sigue igual", "sigue fallando", "todavia no",
            "todavia sale", "todavia me", "aun no", "no pasa nada", "no hace nada", "no cambia", "no cambio nada",
            "no es lo que", "no era eso", "eso no es", "me entendiste mal", "no me entendiste", "entendiste mal",
            "quise decir", "incorrecto", "esta mal", "preferiria", "prefiero que", "en lugar de", "en vez de",
            "pero me sale", "pero obtengo", "pero me da", "pero me devuelve", "el mismo error", "mismo problema",
            "no ayuda",
        ],
        "complain_open": ["no"],
        "problem": ["error", "problema", "falla", "fallo", "bug"],
        "thanks": ["gracias"],
        "approve": [
            "funciona!", "ya funciona", "funciona perfecto", "funciona bien", "funciono", "me sirvio", "me sirve",
            "eso es", "resuelto", "solucionado", "tiene sentido", "entendido", "justo lo que",
        ],
        "approve_open": [
            "perfecto", "genial", "excelente", "buenisimo", "listo", "increible", "estupendo", "de lujo",
            "muy bien", "chevere", "crack",
        ],
        "asks_output": [
            "pega", "pegame", "comparte ... salida", "comparte ... error", "enviame ... salida",
            "enviame ... error", "mandame ... salida", "mandame ... error", "muestrame ... salida",
            "dime que te sale", "dime que obtienes", "que te sale",
        ],
    },
    # ---------------------------------------------------------------- Italian
    "it": {
        "spaced": True,
        "complain": [
            "sei sicuro", "sicuro che", "non funziona", "non mi funziona", "non ha funzionato", "non va",
            "non parte", "ancora non", "ancora lo stesso", "ancora la stessa", "ancora errore", "ancora niente",
            "sempre lo stesso", "sempre la stessa", "dice sempre", "non succede niente", "non succede nulla",
            "non fa niente", "non fa nulla", "non cambia", "non e cambiato", "non e quello che", "non era quello",
            "non intendevo", "intendevo", "hai capito male", "non hai capito", "sbagliato", "errato", "preferirei",
            "piuttosto che", "invece di", "ma ottengo", "ma mi da", "ma mi esce", "ma restituisce", "stesso errore",
            "stesso problema", "non serve", "non aiuta",
        ],
        "complain_open": ["no", "macche"],
        "problem": ["errore", "problema", "crash", "bug", "non trova"],
        "thanks": ["grazie"],
        "approve": [
            "funziona!", "ora funziona", "adesso funziona", "funziona perfettamente", "funziona bene",
            "ha funzionato", "ok funziona", "funziona", "risolto", "chiarissimo", "ho capito", "proprio quello che",
        ],
        "approve_open": [
            "perfetto", "ottimo", "fantastico", "eccellente", "benissimo", "grande", "top", "splendido", "bravo",
            "molto bene",
        ],
        "asks_output": [
            "incolla", "incollami", "incollalo", "inviami ... output", "inviami ... errore", "mandami ... output",
            "mandami ... errore", "fammi sapere ... output", "fammi sapere ... errore", "fammi sapere cosa stampa",
            "fammi sapere cosa ti dice", "dimmi cosa stampa", "dimmi cosa ti dice", "dimmi ... output",
            "condividi ... output", "copia ... output",
        ],
    },
    # ---------------------------------------------------------------- Portuguese
    "pt": {
        "spaced": True,
        "complain": [
            "tem certeza", "voce tem certeza", "mas da erro", "nao funciona", "nao funcionou", "nao deu certo",
            "nao rolou", "continua sem", "continua dando", "continua o mesmo", "continua a mesma", "continua igual",
            "ainda nao", "ainda da", "ainda aparece", "nao acontece nada", "nada acontece", "nao faz nada",
            "nao muda", "nao mudou", "nao e o que", "nao era isso", "voce entendeu errado", "entendeu errado",
            "eu quis dizer", "errado", "incorreto", "prefiro que", "preferiria", "em vez de", "ao inves de",
            "mas recebo", "mas aparece", "mas retorna", "mesmo erro", "mesmo problema", "nao ajuda",
        ],
        "complain_open": ["nao"],
        "problem": ["erro", "problema", "falha", "bug"],
        "thanks": ["obrigado", "obrigada", "valeu", "brigado"],
        "approve": [
            "funcionou", "funciona!", "agora funciona", "deu certo", "resolvido", "resolveu", "faz sentido",
            "entendi", "exatamente o que",
        ],
        "approve_open": [
            "perfeito", "otimo", "excelente", "show", "maravilha", "top", "massa", "incrivel", "muito bom", "boa",
        ],
        "asks_output": [
            "cole", "cola aqui", "compartilhe ... saida", "compartilhe ... erro", "me envie ... saida",
            "me envie ... erro", "me mande ... saida", "me mande ... erro", "me diga o que aparece",
            "o que aparece",
        ],
    },
    # ---------------------------------------------------------------- Korean
    "ko": {
        "spaced": False,
        "complain": [
            "확실해요", "확실한가요", "확실해?", "안 됐", "안됐", "그대로예요", "그대로네요", "그대로입니다", "그대로 나와", "똑같아", "똑같네", "똑같습니다",
            "똑같은 에러", "똑같은 오류", "작동하지 않", "작동 안", "작동안", "동작하지 않", "동작 안", "동작안", "안 돼", "안돼", "안 되", "안되", "안 됨",
            "안됨", "안 됩니다", "안됩니다", "안 먹", "안먹", "여전히", "아직도", "아무 일도", "아무것도 안", "아무 반응", "반응이 없", "변화가 없", "바뀌지 않",
            "안 바뀌", "안바뀌", "변하지 않", "제가 원한", "제가 원하는 건", "제가 요청한", "제가 물어본", "그게 아니라", "그게 아니고", "그런 뜻이 아니",
            "잘못 이해", "오해", "틀렸", "틀린", "잘못됐", "잘못되었", "차라리", "보다는", "대신에", "근데 ... 나와", "근데 ... 나옵", "근데 ... 떠",
            "그런데 ... 나와", "하지만 ... 나와", "같은 에러", "같은 오류", "같은 문제", "소용없", "도움이 안",
        ],
        "complain_open": ["아니요", "아니오", "아뇨", "아니", "노노"],
        "problem": ["에러", "오류", "버그", "실패", "문제가"],
        "thanks": ["감사합니다", "감사해요", "고마워", "고맙습니다", "땡큐"],
        "approve": [
            "완벽", "잘 돼", "잘돼", "잘 됩니다", "잘됩니다", "잘 되네", "잘되네", "잘 작동", "잘 동작", "해결됐", "해결되었", "해결했", "됐어요", "됐습니다",
            "되네요", "됩니다!", "최고", "덕분에", "도움이 됐", "도움이 되었", "이해했", "이해됐", "딱 원하던",
        ],
        "approve_open": ["좋아요", "좋네요", "좋습니다", "대박", "굿", "멋져요", "훌륭"],
        "asks_output": ["붙여", "공유해", "보내주", "결과를 알려", "출력을 알려", "출력 결과를", "에러 메시지를", "오류 메시지를", "로그를"],
    },
    # ---------------------------------------------------------------- Chinese
    "zh": {
        "spaced": False,
        "complain": [
            "你确定", "还是不行", "还是报错", "还是没", "还是一样", "还是出现", "还是不", "不行", "不工作", "不能用", "用不了", "没用", "没有用", "不起作用",
            "没起作用", "无效", "不生效", "没生效", "仍然", "依然", "照样", "没反应", "没有反应", "什么都没发生", "什么也没发生", "没有变化", "没变化", "没有改变",
            "不是我要的", "不是我想要", "不是我问的", "不是这个意思", "我的意思是", "你理解错了", "你误解了", "理解错", "误解", "错了", "不对", "不正确", "报错",
            "出错", "但是我得到", "但我得到", "但是得到", "却得到", "但是显示", "但是输出", "宁愿", "而不是", "我更希望", "同样的错误", "一样的错误", "同样的问题",
        ],
        "complain_open": ["不是", "不，", "不,"],
        "problem": ["错误", "异常", "问题", "失败", "崩溃", "bug"],
        "thanks": ["谢谢", "感谢", "多谢", "谢了"],
        "approve": [
            "没问题", "完美", "成功了", "可以了", "好了", "解决了", "有用", "太棒了", "管用", "能用了", "跑通了", "明白了", "懂了", "正是我要的", "很有帮助",
            "帮大忙",
        ],
        "approve_open": ["好的", "很好", "不错", "棒", "赞", "厉害", "牛"],
        "asks_output": ["贴", "粘贴", "发给我", "发一下", "把输出", "把日志", "把报错", "告诉我输出", "告诉我结果", "输出是什么"],
    },
    # ---------------------------------------------------------------- Japanese
    "ja": {
        "spaced": False,
        "complain": [
            "本当ですか", "本当に？", "まだ動", "まだエラー", "まだ同じ", "まだ直", "できませんでした", "できなかった", "うまくできない", "動かない", "動きません",
            "動作しない", "動作しません", "うまくいかない", "うまくいきません", "機能しない", "機能しません", "相変わらず", "何も起こらない", "何も起きない", "何も起こりません",
            "変わらない", "変わりません", "変化がない", "そうではなく", "そういうことではな", "そうじゃなく", "違います", "違う", "間違", "誤解", "エラーが出",
            "エラーになり", "エラーになる", "むしろ", "ではなく", "じゃなくて", "同じエラー", "同じ問題",
        ],
        "complain_open": ["いいえ", "いや"],
        "problem": ["エラー", "例外", "問題", "失敗", "バグ"],
        "thanks": ["ありがとう", "ありがとうございます"],
        "approve": [
            "問題なく", "完璧", "動きました", "動いた", "うまくいきました", "うまくいった", "解決しました", "解決した", "助かりました", "助かる", "できました",
            "わかりました", "分かりました", "理解しました", "素晴らしい", "さすが",
        ],
        "approve_open": ["いいですね", "いいね", "最高", "すごい", "なるほど", "了解"],
        "asks_output": ["貼り付け", "貼って", "共有して", "送って", "出力を教え", "結果を教え", "エラーメッセージを教え", "ログを"],
    },
    # ---------------------------------------------------------------- Russian
    "ru": {
        "spaced": True,
        "complain": [
            "ты уверен", "вы уверены", "а не", "не работает", "не работают", "не сработало", "не заработало",
            "не получается", "не помогло", "все еще", "всё ещё", "до сих пор", "по-прежнему", "опять",
            "снова та же", "снова тот же", "ничего не происходит", "ничего не произошло", "ничего не изменилось",
            "не меняется", "не изменилось", "не то", "не то что я", "не это", "я имел в виду", "я имела в виду",
            "вы не поняли", "ты не понял", "неправильно", "неверно", "не так", "лучше бы", "я бы предпочел",
            "вместо", "но я получаю", "но получаю", "но выдает", "но выдаёт", "та же ошибка", "та же проблема",
        ],
        "complain_open": ["нет", "неа"],
        "problem": ["ошибка", "ошибку", "ошибки", "проблема", "падает", "баг"],
        "thanks": ["спасибо", "спс"],
        "approve": [
            "заработало", "работает!", "теперь работает", "все работает", "всё работает", "получилось", "помогло",
            "понятно", "понял", "поняла", "то что нужно", "именно то",
        ],
        "approve_open": [
            "отлично", "идеально", "супер", "класс", "круто", "прекрасно", "шикарно", "огонь", "здорово",
        ],
        "asks_output": [
            "вставьте", "вставь", "пришлите", "пришли", "скиньте", "скинь", "покажите вывод", "покажи вывод",
            "покажите ... ошибк", "что выводит", "что он выдает",
        ],
    },
    # ---------------------------------------------------------------- Polish
    "pl": {
        "spaced": True,
        "complain": [
            "jestes pewien", "jestes pewna", "nie dziala", "dalej nie", "nadal nie", "nadal", "wciaz",
            "ciagle to samo", "nic sie nie dzieje", "nic sie nie zmienia", "nic sie nie zmienilo", "nie o to",
            "nie o to pytalem", "nie o to chodzi", "zle zrozumiales", "zle zrozumialas", "chodzilo mi", "zle",
            "bledne", "niepoprawne", "wolalbym", "wolalabym", "zamiast", "ale dostaje", "ale wyskakuje",
            "ale wychodzi", "ten sam blad", "to samo", "nie pomoglo",
        ],
        "complain_open": ["nie"],
        "problem": ["blad", "bledy", "problem", "wywala", "crash"],
        "thanks": ["dzieki", "dziekuje"],
        "approve": [
            "dziala!", "teraz dziala", "juz dziala", "wszystko dziala", "dziala", "pomoglo", "udalo sie",
            "rozumiem", "dokladnie o to",
        ],
        "approve_open": ["super", "idealnie", "swietnie", "doskonale", "extra", "git", "bomba", "sztos"],
        "asks_output": [
            "wklej", "przeslij", "wyslij ... wynik", "wyslij ... blad", "pokaz ... wynik", "co ci wyswietla",
            "co wypisuje",
        ],
    },
    # ---------------------------------------------------------------- Turkish
    "tr": {
        "spaced": True,
        "complain": [
            "emin misin", "emin misiniz", "calısmıyor", "calismiyor", "calısmadı", "calismadi", "olmuyor", "olmadı",
            "olmadi", "hala", "hâlâ", "hicbir sey olmuyor", "hicbir sey olmadı", "degismedi", "degismiyor",
            "istedigim bu degil", "bunu istemedim", "yanlıs anladın", "yanlis anladin", "yanlıs", "yanlis",
            "tercih ederim", "yerine", "ama ... alıyorum", "ama ... aliyorum", "ama ... veriyor", "ama ... cıkıyor",
            "aynı hata", "ayni hata", "aynı sorun", "ayni sorun", "ise yaramadı", "ise yaramadi",
        ],
        "complain_open": ["hayır", "hayir", "yok"],
        "problem": ["hata", "sorun", "problem", "cokuyor"],
        "thanks": ["tesekkurler", "tesekkur ederim", "sag ol", "sagol"],
        "approve": [
            "calıstı", "calisti", "calısıyor", "calisiyor", "oldu", "duzeldi", "cozuldu", "ise yaradı",
            "ise yaradi", "anladım", "anladim",
        ],
        "approve_open": ["mukemmel", "harika", "super", "cok iyi", "efsane", "guzel", "tamamdır"],
        "asks_output": [
            "yapıstır", "yapistir", "paylas ... cıktı", "paylas ... cikti", "gonder ... cıktı", "gonder ... cikti",
            "ne cıktı", "cıktıyı", "ciktiyi",
        ],
    },
}

# Emoji and marks that carry a reaction in every language.
EMOJI_APPROVE = ("👍", "🙏", "✅", "🎉", "👌", "❤️", "❤", "😍", "🙌", "💯", "🥳", "😊", "🤩", "💪")
EMOJI_COMPLAIN = ("👎", "😡", "🤦", "😤", "❌", "🙄", "😠", "😩", "😞", "🤬")

LANGUAGES = tuple(LEXICON)
