#include "server/http/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace slq::http {
namespace {

// Test data: the chat templates as published in the models' tokenizer_config.json
// (Meta-Llama-3-8B-Instruct, Qwen2-7B-Instruct (ChatML), Mistral-7B-Instruct-v0.1).
// Expected renderings were checked against Python's jinja2 with transformers' settings
// (trim_blocks, lstrip_blocks).
const char* kLlama3 =
    R"({% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %})";
const char* kQwen2 =
    R"({% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %})";
const char* kMistral =
    R"({{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %})";
// Multi-line, with whitespace control, trim/lstrip blocks, namespace, .strip(), ~, loop.last.
const char* kMultiline = R"({%- set ns = namespace(sys='') -%}
{% for m in messages %}
  {% if m.role == 'system' %}
    {% set ns.sys = m.content.strip() %}
  {% elif m.role == 'user' %}
<u{{ loop.index }}>{{ (ns.sys ~ ' ' if ns.sys else '') ~ m['content'].strip() }}{% if not loop.last %};{% endif %}

  {% else %}
<a>{{ m.content | trim }}{{ eos_token }}
  {% endif %}
{% endfor %}
{# a comment #}
{% if add_generation_prompt -%}
   <a>
{%- endif %})";

std::vector<ChatMessage> Conversation() {
  return {{"system", "  Be brief. "}, {"user", "Hi there \n"}, {"assistant", " Hello! "}, {"user", "Count: 1 2 3"}};
}

std::string Render(const char* src, std::vector<ChatMessage> msgs, bool gen = true) {
  auto t = ChatTemplate::Parse(src);
  EXPECT_TRUE(t.ok()) << t.status();
  if (!t.ok()) return "";
  ChatTemplate::Inputs in;
  in.messages = std::move(msgs);
  in.bos_token = "<s>";
  in.eos_token = "</s>";
  in.add_generation_prompt = gen;
  auto out = t->Render(in);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : out.status().ToString();
}

TEST(ChatTemplateTest, Llama3) {
  EXPECT_EQ(
      Render(kLlama3, Conversation()),
      "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>"
      "\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>"
      "user<|end_header_id|>\n\nCount: 1 2 3<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(Render(kLlama3, {{"user", "x"}}, false), "<s><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>");
}

TEST(ChatTemplateTest, QwenChatML) {
  EXPECT_EQ(
      Render(kQwen2, Conversation()),
      "<|im_start|>system\n  Be brief. <|im_end|>\n<|im_start|>user\nHi there \n<|im_end|>\n<|im_start|>assistant\n"
      " Hello! <|im_end|>\n<|im_start|>user\nCount: 1 2 3<|im_end|>\n<|im_start|>assistant\n");
  // No system message: the template adds its default one.
  EXPECT_EQ(Render(kQwen2, {{"user", "Hi"}}, false),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplateTest, Mistral) {
  std::vector<ChatMessage> conv = Conversation();
  conv.erase(conv.begin());
  EXPECT_EQ(Render(kMistral, conv), "<s>[INST] Hi there \n [/INST] Hello! </s>[INST] Count: 1 2 3 [/INST]");
}

TEST(ChatTemplateTest, RaiseExceptionIsAnInvalidArgumentWithTheTemplatesMessage) {
  auto t = ChatTemplate::Parse(kMistral);
  ASSERT_TRUE(t.ok());
  ChatTemplate::Inputs in;
  in.messages = Conversation();  // starts with a system message: Mistral v0.1 refuses
  auto out = t->Render(in);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out.status().message(), "Conversation roles must alternate user/assistant/user/assistant/...");
}

TEST(ChatTemplateTest, MultilineWithWhitespaceControl) {
  EXPECT_EQ(Render(kMultiline, Conversation()),
            "<u2>Be brief. Hi there;\n<a>Hello!</s>\n<u4>Be brief. Count: 1 2 3\n<a>");
  EXPECT_EQ(Render(kMultiline, Conversation(), false),
            "<u2>Be brief. Hi there;\n<a>Hello!</s>\n<u4>Be brief. Count: 1 2 3\n");
}

TEST(ChatTemplateTest, Expressions) {
  auto eval = [](const std::string& expr) {
    auto t = ChatTemplate::Parse("{{ " + expr + " }}");
    if (!t.ok()) return t.status().ToString();
    auto out = t->RenderJson({{"xs", {1, 2, 3}}, {"s", "abc"}, {"d", {{"k", "v"}}}});
    return out.ok() ? *out : out.status().ToString();
  };
  EXPECT_EQ(eval("1 + 2 * 3"), "7");
  EXPECT_EQ(eval("7 // 2 ~ '/' ~ 7 % 3"), "3/1");
  EXPECT_EQ(eval("xs[1:] | length"), "2");
  EXPECT_EQ(eval("xs[-1]"), "3");
  EXPECT_EQ(eval("s.upper() + s[0]"), "ABCa");
  EXPECT_EQ(eval("'b' in s and 4 not in xs"), "True");
  EXPECT_EQ(eval("d.k ~ d['k'] ~ d.missing"), "vv");
  EXPECT_EQ(eval("missing is defined"), "False");
  EXPECT_EQ(eval("d.k is string and not (none is not none)"), "True");
  EXPECT_EQ(eval("'yes' if xs else 'no'"), "yes");
  EXPECT_EQ(eval("s.startswith('ab')"), "True");
  EXPECT_EQ(eval("'  x  ' | trim ~ '|'"), "x|");
  EXPECT_EQ(eval("d | tojson"), "{\"k\":\"v\"}");
  EXPECT_NE(eval("1 +").find("INVALID_ARGUMENT"), std::string::npos);
  EXPECT_NE(eval("unknown_fn(1)").find("unknown function 'unknown_fn'"), std::string::npos);
}

TEST(ChatTemplateTest, LoopVariablesAndElse) {
  auto t = ChatTemplate::Parse(
      "{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{% if loop.first %}F{% endif %}"
      "{% if loop.last %}L{% endif %}/{{ loop.length }} {% else %}empty{% endfor %}"
      "{% for x in xs if x > 1 %}{{ x }}{% endfor %}");
  ASSERT_TRUE(t.ok()) << t.status();
  auto out = t->RenderJson({{"xs", {5, 6}}});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "102F/2 211L/2 56");
  out = t->RenderJson({{"xs", nlohmann::json::array()}});
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "empty");
}

TEST(ChatTemplateTest, ParseErrorsNameTheProblem) {
  auto t = ChatTemplate::Parse("{% if x %}never closed");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("missing {% endif %}"), std::string::npos) << t.status();
  t = ChatTemplate::Parse("{% macro m() %}{% endmacro %}");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("macro"), std::string::npos) << t.status();
  t = ChatTemplate::Parse("{{ 'open ");
  ASSERT_FALSE(t.ok());
}

TEST(ChatTemplateTest, LoadFromTokenizerConfig) {
  const auto dir = std::filesystem::path(testing::TempDir()) / "chat_template_test";
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "tokenizer_config.json") << nlohmann::json{
        {"chat_template", kQwen2},
        {"bos_token", nullptr},
        {"eos_token", {{"content", "<|im_end|>"}}}}.dump();
  }
  auto t = LoadChatTemplate(dir.string());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->eos_token, "<|im_end|>");
  EXPECT_EQ(t->bos_token, "");
  { std::ofstream(dir / "tokenizer_config.json") << R"({"bos_token": "<s>"})"; }
  auto none = LoadChatTemplate(dir.string());
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("no chat template"), std::string::npos);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(LoadChatTemplate(dir.string()).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace slq::http
