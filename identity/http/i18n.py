"""The words of the identity pages in zh-CN and en (one table; a test checks both are complete)."""

from __future__ import annotations

from typing import Final

LANGUAGES: Final = ("zh-CN", "en")
DEFAULT_LANGUAGE: Final = "zh-CN"

MESSAGES: Final[dict[str, dict[str, str]]] = {
    "zh-CN": {
        "lang_name": "中文",
        "other_lang": "English",
        "skip": "跳到主要内容",
        "counter_title": "服务窗口",
        "staff_token": "工作人员令牌",
        "sign_in": "登录",
        "sign_out": "退出",
        "bad_token": "令牌不正确。",
        "ask_title": "提出问题",
        "ask_hint": "只勾选办理本事项需要的内容。居民只会被问到这些，也只告诉您这些。",
        "ask_button": "生成二维码",
        "nothing_chosen": "请至少选择一项。",
        "service": "服务",
        "purpose": "用途",
        "waiting_title": "请居民扫码",
        "waiting_hint": "请居民用 imi 钱包扫描二维码，或在本机打开链接。答复到达后本页自动更新。",
        "open_on_device": "在本机钱包中打开",
        "expires": "有效期至",
        "result_title": "核验结果",
        "valid": "核验通过",
        "invalid": "核验未通过",
        "reason": "原因",
        "yes": "是",
        "no": "否",
        "not_disclosed": "未提供",
        "new_question": "新的问题",
        "expired": "该请求已过期。",
        "age_over": "年满 {n} 岁",
        "credential_type": "证件类型",
        "issuer": "签发机构",
        "error_title": "出错了",
    },
    "en": {
        "lang_name": "English",
        "other_lang": "中文",
        "skip": "Skip to main content",
        "counter_title": "Service counter",
        "staff_token": "Staff token",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "bad_token": "That token is not right.",
        "ask_title": "Ask a question",
        "ask_hint": "Tick only what this service needs. The resident is asked exactly that, and you learn only that.",
        "ask_button": "Show QR code",
        "nothing_chosen": "Choose at least one item.",
        "service": "Service",
        "purpose": "Purpose",
        "waiting_title": "Ask the resident to scan",
        "waiting_hint": "The resident scans the QR code with the imi wallet, or opens the link on this device. "
                        "This page updates when the answer arrives.",
        "open_on_device": "Open in the wallet on this device",
        "expires": "Valid until",
        "result_title": "Result",
        "valid": "Verified",
        "invalid": "Not verified",
        "reason": "Reason",
        "yes": "Yes",
        "no": "No",
        "not_disclosed": "not given",
        "new_question": "New question",
        "expired": "This request has expired.",
        "age_over": "Aged {n} or over",
        "credential_type": "Credential type",
        "issuer": "Issuer",
        "error_title": "Something went wrong",
    },
}


def claim_label(path: str, words: dict[str, str]) -> str:
    """A person's words for a dotted claim path (``age_equal_or_over.18`` → "Aged 18 or over")."""
    head, _, rest = path.partition(".")
    if head == "age_equal_or_over" and rest.isdigit():
        return words["age_over"].format(n=rest)
    return path.replace("_", " ")


__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "MESSAGES", "claim_label"]
