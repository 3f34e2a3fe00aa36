"""English and Japanese messages of the inspection API (``Accept-Language: en|ja``).

Messages are written in English in the code; :func:`translate` maps each to Japanese.
Messages with a variable part use a ``{}`` template keyed by their fixed prefix.
"""

from __future__ import annotations

from typing import Any

JA: dict[str, str] = {
    "Cannot find client information": "クライアント情報が見つかりません",
    "Client id and secret mismatch": "クライアントIDとシークレットが一致しません",
    "No permission to access this resource": "このリソースへのアクセス権限がありません",
    "Invalid license!": "無効なライセンスです！",
    "License already exists": "ライセンスは既に存在します",
    "No license file": "ライセンスファイルがありません",
    "The license was issued to another client": "このライセンスは別のクライアントに発行されています",
    "The license has expired": "ライセンスの有効期限が切れています",
    "The license file is malformed or its signature is wrong": "ライセンスファイルの形式または署名が正しくありません",
    "No match for item_id!": "item_id に一致するアイテムがありません！",
    "No permission to view item!": "このアイテムを表示する権限がありません！",
    "Cannot find items": "アイテムが見つかりません",
    "There is no available model": "利用可能なモデルがありません",
    "No model found": "モデルが見つかりません",
    "Cannot find models": "モデルが見つかりません",
    "You do not have access to one or more item ids provided": "指定されたアイテムIDの一部にアクセスする権限がありません",
    "Invalid Request": "不正なリクエストです",
    "No images to upload": "アップロードする画像がありません",
    "Cannot find image": "画像が見つかりません",
    "No algorithms found": "アルゴリズムが見つかりません",
    "Not Found": "見つかりません",
    "Method Not Allowed": "許可されていないメソッドです",
    "Internal Server Error": "サーバー内部エラー",
    "Service Unavailable": "サービスを利用できません",
    "Payload Too Large": "リクエストが大きすぎます",
    "Too Many Requests": "リクエストが多すぎます",
    "Unsupported Media Type": "サポートされていないメディアタイプです",
    "Bad Request": "不正なリクエストです",
    "Unauthorized": "認証されていません",
    "Forbidden": "アクセスが拒否されました",
    "Unprocessable Entity": "処理できないリクエストです",
    "No good training images among the item ids": "指定されたアイテムに良品の学習画像がありません",
    "No item ids given": "アイテムIDが指定されていません",
    "The model is not ready": "モデルの準備ができていません",
    "The request body is not valid JSON": "リクエスト本文が正しいJSONではありません",
    "The annotation box is outside the image or inverted": "アノテーションの枠が画像の外にあるか、反転しています",
    "Too many files in one upload": "一度にアップロードできるファイル数を超えています",
    "unavailable: the service is overloaded or restarting, retry later": "サービスが混雑しているか再起動中です。後でもう一度お試しください",
}

# Messages with a variable tail: English prefix -> Japanese prefix.
JA_PREFIXES: dict[str, str] = {
    "Invalid filename ": "無効なファイル名 ",
    "Unreadable image ": "読み込めない画像 ",
    "File too large ": "ファイルが大きすぎます ",
    "Unknown algorithm_parameter_id ": "不明な algorithm_parameter_id ",
    "Unknown algorithm ": "不明なアルゴリズム ",
    "Internal server error (request ": "サーバー内部エラー (リクエスト ",
    "Field required: ": "必須項目がありません: ",
    "Invalid value: ": "不正な値です: ",
    "unavailable: ": "利用できません: ",
    "Rate limit exceeded: ": "リクエスト数の上限を超えました: ",
}


def language(header: str | None) -> str:
    """``ja`` or ``en`` from an Accept-Language header (highest q wins; default en)."""
    best, best_q = "en", -1.0
    for part in (header or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in ("ja", "en") and q > best_q:
            best, best_q = primary, q
    return best


def translate(message: Any, lang: str) -> Any:
    """The message (a string, a list of strings or None) in ``lang``."""
    if lang != "ja" or message is None:
        return message
    if isinstance(message, list):
        return [translate(m, lang) for m in message]
    if not isinstance(message, str):
        return message
    if message in JA:
        return JA[message]
    for prefix, ja in JA_PREFIXES.items():
        if message.startswith(prefix):
            return ja + message[len(prefix) :]
    return message
