#include "server/http/chat_template.h"

#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/file_util.h"

namespace slq::http {

using json = nlohmann::json;

namespace jinja {
namespace {

// ---- Expressions ------------------------------------------------------------------------

struct Expr;
using ExprP = std::shared_ptr<const Expr>;

struct Expr {
  enum Kind { kLiteral, kName, kList, kDict, kAttr, kIndex, kSlice, kCall, kFilter, kTest, kUnary, kBinary, kCond };
  Kind kind = kLiteral;
  json value;        // literal
  std::string name;  // variable / attribute / filter / test / operator
  std::vector<ExprP>
      args;  // operands (kAttr: [obj]; kIndex: [obj, idx]; kSlice: [obj, lo?, hi?]; kCall: [callee, args...])
  bool negate = false;            // `is not`
  std::vector<std::string> keys;  // kCall / kFilter: keyword names of args[1..] ("" = positional)
};

json Undefined() { return json(json::value_t::discarded); }
bool IsUndefined(const json& v) { return v.is_discarded(); }

bool Truthy(const json& v) {
  if (v.is_discarded() || v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) return v.get<int64_t>() != 0;
  if (v.is_number()) return v.get<double>() != 0;
  if (v.is_string()) return !v.get_ref<const std::string&>().empty();
  return !v.empty();
}

std::string ToText(const json& v) {
  if (v.is_discarded()) return "";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "None";
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::floor(d) == d && std::abs(d) < 1e15) return absl::StrCat(static_cast<int64_t>(d), ".0");
    return absl::StrCat(d);
  }
  return v.dump();
}

// ---- Lexing of one tag's expression source ---------------------------------------------

struct Tok {
  enum Kind { kEnd, kName, kString, kInt, kFloat, kOp } kind = kEnd;
  std::string text;
};

absl::StatusOr<std::vector<Tok>> LexExpr(std::string_view s, size_t base) {
  std::vector<Tok> out;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      out.push_back({Tok::kName, std::string(s.substr(i, j - i))});
      i = j;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      bool is_float = false;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.')) {
        if (s[j] == '.') {
          if (j + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[j + 1]))) break;
          is_float = true;
        }
        ++j;
      }
      out.push_back({is_float ? Tok::kFloat : Tok::kInt, std::string(s.substr(i, j - i))});
      i = j;
      continue;
    }
    if (c == '\'' || c == '"') {
      std::string str;
      size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] == '\\' && j + 1 < s.size()) {
          ++j;
          switch (s[j]) {
            case 'n':
              str.push_back('\n');
              break;
            case 't':
              str.push_back('\t');
              break;
            case 'r':
              str.push_back('\r');
              break;
            default:
              str.push_back(s[j]);
          }
        } else {
          str.push_back(s[j]);
        }
      }
      if (j >= s.size())
        return absl::InvalidArgumentError(absl::StrCat("chat template: unterminated string at offset ", base + i));
      out.push_back({Tok::kString, std::move(str)});
      i = j + 1;
      continue;
    }
    static const char* kOps2[] = {"==", "!=", "<=", ">=", "//", "**"};
    bool two = false;
    for (const char* op : kOps2) {
      if (s.substr(i, 2) == op) {
        out.push_back({Tok::kOp, op});
        i += 2;
        two = true;
        break;
      }
    }
    if (two) continue;
    if (std::string_view("+-*/%~<>()[]{}.,:|=").find(c) != std::string_view::npos) {
      out.push_back({Tok::kOp, std::string(1, c)});
      ++i;
      continue;
    }
    return absl::InvalidArgumentError(
        absl::StrCat("chat template: unexpected character '", std::string(1, c), "' at offset ", base + i));
  }
  out.push_back({Tok::kEnd, ""});
  return out;
}

// ---- Expression parser (Jinja2 precedence) ---------------------------------------------

class ExprParser {
 public:
  ExprParser(std::vector<Tok> toks, size_t base) : t_(std::move(toks)), base_(base) {}

  absl::StatusOr<ExprP> ParseAll() {
    auto e = ParseExpr();
    if (!e.ok()) return e;
    if (Peek().kind != Tok::kEnd) return Error("unexpected '" + Peek().text + "'");
    return e;
  }
  absl::StatusOr<ExprP> ParseExpr() { return ParseCond(); }
  const Tok& Peek(size_t k = 0) const { return t_[std::min(pos_ + k, t_.size() - 1)]; }
  bool AcceptName(const char* n) {
    if (Peek().kind == Tok::kName && Peek().text == n) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool AcceptOp(const char* op) {
    if (Peek().kind == Tok::kOp && Peek().text == op) {
      ++pos_;
      return true;
    }
    return false;
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Peek().kind != Tok::kName) return Error("expected a name");
    return t_[pos_++].text;
  }
  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat("chat template: ", what, " in the tag at offset ", base_));
  }
  size_t pos() const { return pos_; }

 private:
  static ExprP Make(Expr::Kind k, std::string name, std::vector<ExprP> args) {
    auto e = std::make_shared<Expr>();
    e->kind = k;
    e->name = std::move(name);
    e->args = std::move(args);
    return e;
  }

  absl::StatusOr<ExprP> ParseCond() {
    auto body = ParseOr();
    if (!body.ok()) return body;
    if (AcceptName("if")) {
      auto cond = ParseOr();
      if (!cond.ok()) return cond;
      ExprP other;
      if (AcceptName("else")) {
        auto o = ParseCond();
        if (!o.ok()) return o;
        other = *o;
      } else {
        auto u = std::make_shared<Expr>();
        u->value = Undefined();
        other = u;
      }
      return Make(Expr::kCond, "", {*cond, *body, other});
    }
    return body;
  }
  absl::StatusOr<ExprP> ParseOr() {
    auto l = ParseAnd();
    if (!l.ok()) return l;
    ExprP e = *l;
    while (AcceptName("or")) {
      auto r = ParseAnd();
      if (!r.ok()) return r;
      e = Make(Expr::kBinary, "or", {e, *r});
    }
    return e;
  }
  absl::StatusOr<ExprP> ParseAnd() {
    auto l = ParseNot();
    if (!l.ok()) return l;
    ExprP e = *l;
    while (AcceptName("and")) {
      auto r = ParseNot();
      if (!r.ok()) return r;
      e = Make(Expr::kBinary, "and", {e, *r});
    }
    return e;
  }
  absl::StatusOr<ExprP> ParseNot() {
    if (AcceptName("not")) {
      auto x = ParseNot();
      if (!x.ok()) return x;
      return Make(Expr::kUnary, "not", {*x});
    }
    return ParseCompare();
  }
  absl::StatusOr<ExprP> ParseCompare() {
    auto l = ParseAdd();
    if (!l.ok()) return l;
    ExprP e = *l;
    while (true) {
      std::string op;
      if (Peek().kind == Tok::kOp && (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" ||
                                      Peek().text == ">" || Peek().text == "<=" || Peek().text == ">=")) {
        op = t_[pos_++].text;
      } else if (AcceptName("in")) {
        op = "in";
      } else if (Peek().kind == Tok::kName && Peek().text == "not" && Peek(1).kind == Tok::kName &&
                 Peek(1).text == "in") {
        pos_ += 2;
        op = "not in";
      } else {
        break;
      }
      auto r = ParseAdd();
      if (!r.ok()) return r;
      e = Make(Expr::kBinary, op, {e, *r});
    }
    return e;
  }
  absl::StatusOr<ExprP> ParseAdd() {
    auto l = ParseConcat();
    if (!l.ok()) return l;
    ExprP e = *l;
    while (Peek().kind == Tok::kOp && (Peek().text == "+" || Peek().text == "-")) {
      std::string op = t_[pos_++].text;
      auto r = ParseConcat();
      if (!r.ok()) return r;
      e = Make(Expr::kBinary, op, {e, *r});
    }
    return e;
  }
  absl::StatusOr<ExprP> ParseConcat() {
    auto l = ParseMul();
    if (!l.ok()) return l;
    ExprP e = *l;
    while (AcceptOp("~")) {
      auto r = ParseMul();
      if (!r.ok()) return r;
      e = Make(Expr::kBinary, "~", {e, *r});
    }
    return e;
  }
  absl::StatusOr<ExprP> ParseMul() {
    auto l = ParseUnary();
    if (!l.ok()) return l;
    ExprP e = *l;
    while (Peek().kind == Tok::kOp &&
           (Peek().text == "*" || Peek().text == "/" || Peek().text == "//" || Peek().text == "%")) {
      std::string op = t_[pos_++].text;
      auto r = ParseUnary();
      if (!r.ok()) return r;
      e = Make(Expr::kBinary, op, {e, *r});
    }
    return e;
  }
  absl::StatusOr<ExprP> ParseUnary() {
    if (AcceptOp("-")) {
      auto x = ParseUnary();
      if (!x.ok()) return x;
      return Make(Expr::kUnary, "-", {*x});
    }
    auto p = ParsePrimary();
    if (!p.ok()) return p;
    auto post = ParsePostfix(*p);
    if (!post.ok()) return post;
    return ParseFilterTest(*post);
  }
  absl::StatusOr<std::vector<ExprP>> ParseArgs(std::vector<std::string>* keys = nullptr) {  // after '('
    std::vector<ExprP> args;
    if (AcceptOp(")")) return args;
    while (true) {
      std::string key;
      if (Peek().kind == Tok::kName && Peek(1).kind == Tok::kOp && Peek(1).text == "=") {
        key = Peek().text;
        pos_ += 2;
      }
      if (keys) keys->push_back(key);
      auto a = ParseExpr();
      if (!a.ok()) return a.status();
      args.push_back(*a);
      if (AcceptOp(")")) return args;
      if (!AcceptOp(",")) return Error("expected ',' or ')' in an argument list");
    }
  }
  absl::StatusOr<ExprP> ParsePostfix(ExprP e) {
    while (true) {
      if (AcceptOp(".")) {
        auto n = ExpectName();
        if (!n.ok()) return n.status();
        e = Make(Expr::kAttr, *n, {e});
      } else if (AcceptOp("[")) {
        ExprP lo, hi;
        if (!(Peek().kind == Tok::kOp && Peek().text == ":")) {
          auto x = ParseExpr();
          if (!x.ok()) return x;
          lo = *x;
        }
        if (AcceptOp(":")) {
          if (!(Peek().kind == Tok::kOp && Peek().text == "]")) {
            auto x = ParseExpr();
            if (!x.ok()) return x;
            hi = *x;
          }
          if (!AcceptOp("]")) return Error("expected ']'");
          e = Make(Expr::kSlice, "", {e, lo, hi});
        } else {
          if (!AcceptOp("]")) return Error("expected ']'");
          e = Make(Expr::kIndex, "", {e, lo});
        }
      } else if (AcceptOp("(")) {
        std::vector<std::string> keys;
        auto args = ParseArgs(&keys);
        if (!args.ok()) return args.status();
        std::vector<ExprP> all{e};
        all.insert(all.end(), args->begin(), args->end());
        auto call = std::make_shared<Expr>();
        call->kind = Expr::kCall;
        call->args = std::move(all);
        call->keys = std::move(keys);
        e = call;
      } else {
        return e;
      }
    }
  }
  absl::StatusOr<ExprP> ParseFilterTest(ExprP e) {
    while (true) {
      if (AcceptOp("|")) {
        auto n = ExpectName();
        if (!n.ok()) return n.status();
        std::vector<ExprP> all{e};
        if (AcceptOp("(")) {
          auto args = ParseArgs();
          if (!args.ok()) return args.status();
          all.insert(all.end(), args->begin(), args->end());
        }
        e = Make(Expr::kFilter, *n, std::move(all));
      } else if (AcceptName("is")) {
        const bool neg = AcceptName("not");
        std::string n;
        if (AcceptName("none")) {
          n = "none";
        } else {
          auto name = ExpectName();
          if (!name.ok()) return name.status();
          n = *name;
        }
        std::vector<ExprP> all{e};
        if (AcceptOp("(")) {
          auto args = ParseArgs();
          if (!args.ok()) return args.status();
          all.insert(all.end(), args->begin(), args->end());
        }
        auto t = std::make_shared<Expr>();
        t->kind = Expr::kTest;
        t->name = n;
        t->args = std::move(all);
        t->negate = neg;
        e = t;
      } else {
        return e;
      }
    }
  }
  absl::StatusOr<ExprP> ParsePrimary() {
    const Tok tok = Peek();
    auto lit = [](json v) {
      auto e = std::make_shared<Expr>();
      e->value = std::move(v);
      return ExprP(e);
    };
    switch (tok.kind) {
      case Tok::kString: {
        ++pos_;
        std::string s = tok.text;
        while (Peek().kind == Tok::kString) s += t_[pos_++].text;  // adjacent literals concatenate
        return lit(s);
      }
      case Tok::kInt:
        ++pos_;
        return lit(std::stoll(tok.text));
      case Tok::kFloat:
        ++pos_;
        return lit(std::stod(tok.text));
      case Tok::kName:
        ++pos_;
        if (tok.text == "true" || tok.text == "True") return lit(true);
        if (tok.text == "false" || tok.text == "False") return lit(false);
        if (tok.text == "none" || tok.text == "None") return lit(nullptr);
        return Make(Expr::kName, tok.text, {});
      case Tok::kOp:
        if (AcceptOp("(")) {
          auto e = ParseExpr();
          if (!e.ok()) return e;
          if (!AcceptOp(")")) return Error("expected ')'");
          return e;
        }
        if (AcceptOp("[")) {
          std::vector<ExprP> items;
          while (!AcceptOp("]")) {
            auto e = ParseExpr();
            if (!e.ok()) return e;
            items.push_back(*e);
            if (!AcceptOp(",") && !(Peek().kind == Tok::kOp && Peek().text == "]")) return Error("expected ',' or ']'");
          }
          return Make(Expr::kList, "", std::move(items));
        }
        if (AcceptOp("{")) {
          std::vector<ExprP> kv;
          while (!AcceptOp("}")) {
            auto k = ParseExpr();
            if (!k.ok()) return k;
            if (!AcceptOp(":")) return Error("expected ':' in a dict literal");
            auto v = ParseExpr();
            if (!v.ok()) return v;
            kv.push_back(*k);
            kv.push_back(*v);
            if (!AcceptOp(",") && !(Peek().kind == Tok::kOp && Peek().text == "}")) return Error("expected ',' or '}'");
          }
          return Make(Expr::kDict, "", std::move(kv));
        }
        break;
      case Tok::kEnd:
        return Error("unexpected end of expression");
    }
    return Error("unexpected '" + tok.text + "'");
  }

  std::vector<Tok> t_;
  size_t base_;
  size_t pos_ = 0;
};

}  // namespace

// ---- Statements -------------------------------------------------------------------------

struct Node {
  enum Kind { kSeq, kText, kOutput, kIf, kFor, kSet };
  Kind kind = kSeq;
  std::string text;                             // kText
  ExprP expr;                                   // kOutput, kFor (iterable), kSet (value)
  std::vector<std::shared_ptr<Node>> children;  // kSeq; kIf: bodies; kFor: [body, else]
  std::vector<ExprP> conds;                     // kIf: one per branch, null for else
  std::vector<std::string> targets;             // kFor loop variables; kSet: ["name"] or ["ns", "attr"]
  ExprP filter;                                 // kFor: `for x in xs if cond`
};

namespace {

struct Segment {
  enum Kind { kText, kOutput, kStmt } kind;
  std::string body;
  size_t offset;
};

// Splits the template into text / {{ }} / {% %} segments, applying whitespace control ('-'),
// trim_blocks (drop the newline after a block or comment tag) and lstrip_blocks (drop spaces
// and tabs between a line start and a block or comment tag), as transformers configures Jinja.
absl::StatusOr<std::vector<Segment>> Split(const std::string& src) {
  std::vector<Segment> out;
  size_t i = 0;
  bool trim_next_ws = false, trim_next_nl = false;
  while (i <= src.size()) {
    size_t open = src.find('{', i);
    while (open != std::string::npos && open + 1 < src.size() && src[open + 1] != '{' && src[open + 1] != '%' &&
           src[open + 1] != '#') {
      open = src.find('{', open + 1);
    }
    if (open != std::string::npos && open + 1 >= src.size()) open = std::string::npos;
    std::string text = src.substr(i, open == std::string::npos ? std::string::npos : open - i);
    if (trim_next_ws) {
      text.erase(
          0, text.find_first_not_of(" \t\r\n") == std::string::npos ? text.size() : text.find_first_not_of(" \t\r\n"));
    } else if (trim_next_nl && !text.empty() && text[0] == '\n') {
      text.erase(0, 1);
    }
    trim_next_ws = trim_next_nl = false;
    if (open == std::string::npos) {
      if (!text.empty()) out.push_back({Segment::kText, text, i});
      break;
    }
    const char kind = src[open + 1];
    const bool strip_left = open + 2 < src.size() && src[open + 2] == '-';
    if (strip_left) {
      text.erase(text.find_last_not_of(" \t\r\n") == std::string::npos ? 0 : text.find_last_not_of(" \t\r\n") + 1);
    } else if (kind != '{') {  // lstrip_blocks: spaces/tabs between a line start and the tag
      size_t k = open;
      while (k > i && (src[k - 1] == ' ' || src[k - 1] == '\t')) --k;
      if (k == 0 || src[k - 1] == '\n') text.erase(text.size() - std::min(text.size(), open - k));
    }
    if (!text.empty()) out.push_back({Segment::kText, text, i});
    const std::string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    size_t end = src.find(close, open + 2);
    if (end == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("chat template: tag at offset ", open, " is not closed with '", close, "'"));
    }
    size_t body_begin = open + 2 + (strip_left ? 1 : 0);
    size_t body_end = end;
    bool strip_right = end > body_begin && src[end - 1] == '-';
    if (strip_right) --body_end;
    if (kind != '#') {
      out.push_back(
          {kind == '{' ? Segment::kOutput : Segment::kStmt, src.substr(body_begin, body_end - body_begin), open});
    }
    trim_next_ws = strip_right;
    trim_next_nl = !strip_right && kind != '{';
    i = end + 2;
  }
  return out;
}

class StmtParser {
 public:
  explicit StmtParser(std::vector<Segment> segs) : segs_(std::move(segs)) {}

  absl::StatusOr<std::shared_ptr<Node>> ParseAll() {
    std::string stop;
    auto n = ParseBody({}, &stop);
    if (!n.ok()) return n;
    if (pos_ < segs_.size())
      return absl::InvalidArgumentError(absl::StrCat("chat template: unexpected {% ", stop, " %}"));
    return n;
  }

 private:
  static std::string FirstWord(const std::string& body) {
    std::string b(absl::StripAsciiWhitespace(body));
    size_t e = 0;
    while (e < b.size() && (std::isalnum(static_cast<unsigned char>(b[e])) || b[e] == '_')) ++e;
    return b.substr(0, e);
  }

  // Parses segments until a statement whose first word is in `stops` (left unconsumed; its
  // word in *stop) or the end.
  absl::StatusOr<std::shared_ptr<Node>> ParseBody(const std::vector<std::string>& stops, std::string* stop) {
    auto seq = std::make_shared<Node>();
    while (pos_ < segs_.size()) {
      const Segment& s = segs_[pos_];
      if (s.kind == Segment::kText) {
        auto n = std::make_shared<Node>();
        n->kind = Node::kText;
        n->text = s.body;
        seq->children.push_back(n);
        ++pos_;
        continue;
      }
      if (s.kind == Segment::kOutput) {
        auto e = ParseExprText(s.body, s.offset);
        if (!e.ok()) return e.status();
        auto n = std::make_shared<Node>();
        n->kind = Node::kOutput;
        n->expr = *e;
        seq->children.push_back(n);
        ++pos_;
        continue;
      }
      const std::string word = FirstWord(s.body);
      for (const std::string& st : stops) {
        if (word == st) {
          *stop = word;
          return seq;
        }
      }
      if (word == "if") {
        auto n = ParseIf();
        if (!n.ok()) return n;
        seq->children.push_back(*n);
      } else if (word == "for") {
        auto n = ParseFor();
        if (!n.ok()) return n;
        seq->children.push_back(*n);
      } else if (word == "set") {
        auto n = ParseSet();
        if (!n.ok()) return n;
        seq->children.push_back(*n);
      } else {
        *stop = word;
        if (stops.empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat("chat template: unsupported or unexpected tag {% ", word, " %} at offset ", s.offset));
        }
        return absl::InvalidArgumentError(absl::StrCat("chat template: unsupported tag {% ", word, " %} at offset ",
                                                       s.offset, " (expected ", absl::StrJoin(stops, " or "), ")"));
      }
    }
    if (!stops.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("chat template: missing {% ", stops.back(), " %}"));
    }
    return seq;
  }

  static absl::StatusOr<ExprP> ParseExprText(std::string_view text, size_t offset) {
    auto toks = LexExpr(text, offset);
    if (!toks.ok()) return toks.status();
    ExprParser p(*std::move(toks), offset);
    return p.ParseAll();
  }

  // The statement's text after its first word.
  std::string Rest(const Segment& s, const std::string& word) {
    std::string b(absl::StripAsciiWhitespace(s.body));
    return b.substr(word.size());
  }

  absl::StatusOr<std::shared_ptr<Node>> ParseIf() {
    auto n = std::make_shared<Node>();
    n->kind = Node::kIf;
    std::string word = "if";
    while (true) {
      const Segment& s = segs_[pos_];
      ExprP cond;
      if (word != "else") {
        auto c = ParseExprText(Rest(s, word), s.offset);
        if (!c.ok()) return c.status();
        cond = *c;
      }
      ++pos_;
      std::string stop;
      auto body = ParseBody({"elif", "else", "endif"}, &stop);
      if (!body.ok()) return body;
      n->conds.push_back(cond);
      n->children.push_back(*body);
      if (stop == "endif") {
        ++pos_;
        return n;
      }
      if (word == "else") return absl::InvalidArgumentError("chat template: {% else %} after {% else %}");
      word = stop;
    }
  }

  absl::StatusOr<std::shared_ptr<Node>> ParseFor() {
    const Segment& s = segs_[pos_];
    auto toks = LexExpr(Rest(s, "for"), s.offset);
    if (!toks.ok()) return toks.status();
    ExprParser p(*std::move(toks), s.offset);
    auto n = std::make_shared<Node>();
    n->kind = Node::kFor;
    do {
      auto name = p.ExpectName();
      if (!name.ok()) return name.status();
      n->targets.push_back(*name);
    } while (p.AcceptOp(","));
    if (!p.AcceptName("in")) return p.Error("expected 'in' in a for loop");
    // The iterable stops before an `if` filter: parse an or-expression level.
    auto iter = p.ParseExpr();
    if (!iter.ok()) return iter.status();
    n->expr = *iter;
    if (n->expr->kind == Expr::kCond && IsUndefined(n->expr->args[2]->value) &&
        n->expr->args[2]->kind == Expr::kLiteral) {
      n->filter = n->expr->args[0];  // `for x in xs if cond` parsed as an inline if without else
      n->expr = n->expr->args[1];
    }
    if (p.Peek().kind != Tok::kEnd) return p.Error("unexpected '" + p.Peek().text + "' in a for tag");
    ++pos_;
    std::string stop;
    auto body = ParseBody({"else", "endfor"}, &stop);
    if (!body.ok()) return body;
    n->children.push_back(*body);
    if (stop == "else") {
      ++pos_;
      auto other = ParseBody({"endfor"}, &stop);
      if (!other.ok()) return other;
      n->children.push_back(*other);
    }
    ++pos_;
    return n;
  }

  absl::StatusOr<std::shared_ptr<Node>> ParseSet() {
    const Segment& s = segs_[pos_];
    auto toks = LexExpr(Rest(s, "set"), s.offset);
    if (!toks.ok()) return toks.status();
    ExprParser p(*std::move(toks), s.offset);
    auto n = std::make_shared<Node>();
    n->kind = Node::kSet;
    auto name = p.ExpectName();
    if (!name.ok()) return name.status();
    n->targets.push_back(*name);
    if (p.AcceptOp(".")) {
      auto attr = p.ExpectName();
      if (!attr.ok()) return attr.status();
      n->targets.push_back(*attr);
    }
    if (!p.AcceptOp("=")) return p.Error("block {% set %} (without '=') is not supported");
    auto v = p.ParseAll();
    if (!v.ok()) return v.status();
    n->expr = *v;
    ++pos_;
    return n;
  }

  std::vector<Segment> segs_;
  size_t pos_ = 0;
};

// ---- Evaluation -------------------------------------------------------------------------

class Renderer {
 public:
  explicit Renderer(const json& vars) { scopes_.push_back(vars.is_object() ? vars : json::object()); }

  absl::Status Run(const Node& n, std::string* out) {
    switch (n.kind) {
      case Node::kSeq:
        for (const auto& c : n.children) {
          absl::Status s = Run(*c, out);
          if (!s.ok()) return s;
        }
        return absl::OkStatus();
      case Node::kText:
        out->append(n.text);
        return absl::OkStatus();
      case Node::kOutput: {
        auto v = Eval(*n.expr);
        if (!v.ok()) return v.status();
        out->append(ToText(*v));
        return absl::OkStatus();
      }
      case Node::kIf:
        for (size_t b = 0; b < n.children.size(); ++b) {
          bool take = true;
          if (n.conds[b]) {
            auto v = Eval(*n.conds[b]);
            if (!v.ok()) return v.status();
            take = Truthy(*v);
          }
          if (take) return Run(*n.children[b], out);
        }
        return absl::OkStatus();
      case Node::kSet: {
        auto v = Eval(*n.expr);
        if (!v.ok()) return v.status();
        if (n.targets.size() == 1) {
          scopes_.back()[n.targets[0]] = *v;
          return absl::OkStatus();
        }
        json* ns = Lookup(n.targets[0]);
        if (!ns || !ns->is_object()) {
          return absl::InvalidArgumentError(absl::StrCat("chat template: cannot set ", n.targets[0], ".", n.targets[1],
                                                         ": ", n.targets[0], " is not a namespace"));
        }
        (*ns)[n.targets[1]] = *v;
        return absl::OkStatus();
      }
      case Node::kFor:
        return RunFor(n, out);
    }
    return absl::OkStatus();
  }

 private:
  json* Lookup(const std::string& name) {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return &*f;
    }
    return nullptr;
  }

  absl::Status RunFor(const Node& n, std::string* out) {
    auto seq = Eval(*n.expr);
    if (!seq.ok()) return seq.status();
    std::vector<json> items;
    if (seq->is_array()) {
      items.assign(seq->begin(), seq->end());
    } else if (seq->is_object()) {
      for (auto it = seq->begin(); it != seq->end(); ++it) items.push_back(it.key());
    } else if (seq->is_string()) {
      for (char c : seq->get<std::string>()) items.push_back(std::string(1, c));
    } else if (!IsUndefined(*seq) && !seq->is_null()) {
      return absl::InvalidArgumentError(absl::StrCat("chat template: cannot loop over ", ToText(*seq)));
    }
    auto bind = [&](json& scope, const json& item) -> absl::Status {
      if (n.targets.size() == 1) {
        scope[n.targets[0]] = item;
        return absl::OkStatus();
      }
      if (!item.is_array() || item.size() != n.targets.size()) {
        return absl::InvalidArgumentError("chat template: cannot unpack a loop item into several variables");
      }
      for (size_t k = 0; k < n.targets.size(); ++k) scope[n.targets[k]] = item[k];
      return absl::OkStatus();
    };
    if (n.filter) {
      std::vector<json> kept;
      for (const json& item : items) {
        scopes_.push_back(json::object());
        absl::Status s = bind(scopes_.back(), item);
        absl::StatusOr<json> c = s.ok() ? Eval(*n.filter) : absl::StatusOr<json>(s);
        scopes_.pop_back();
        if (!c.ok()) return c.status();
        if (Truthy(*c)) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return n.children.size() > 1 ? Run(*n.children[1], out) : absl::OkStatus();
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      json scope = json::object();
      absl::Status s = bind(scope, items[i]);
      if (!s.ok()) return s;
      scope["loop"] = {{"index", i + 1},
                       {"index0", i},
                       {"first", i == 0},
                       {"last", i == len - 1},
                       {"length", len},
                       {"revindex", len - i},
                       {"revindex0", len - i - 1},
                       {"previtem", i > 0 ? items[i - 1] : Undefined()},
                       {"nextitem", i + 1 < len ? items[i + 1] : Undefined()}};
      scopes_.push_back(std::move(scope));
      s = Run(*n.children[0], out);
      scopes_.pop_back();
      if (!s.ok()) return s;
    }
    return absl::OkStatus();
  }

  static absl::Status TypeError(const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("chat template: ", what));
  }

  absl::StatusOr<json> Eval(const Expr& e) {
    switch (e.kind) {
      case Expr::kLiteral:
        return e.value;
      case Expr::kName: {
        json* v = Lookup(e.name);
        return v ? *v : Undefined();
      }
      case Expr::kList: {
        json arr = json::array();
        for (const auto& a : e.args) {
          auto v = Eval(*a);
          if (!v.ok()) return v;
          arr.push_back(*v);
        }
        return arr;
      }
      case Expr::kDict: {
        json obj = json::object();
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
          auto key = Eval(*e.args[k]);
          if (!key.ok()) return key;
          auto v = Eval(*e.args[k + 1]);
          if (!v.ok()) return v;
          obj[ToText(*key)] = *v;
        }
        return obj;
      }
      case Expr::kAttr: {
        auto obj = Eval(*e.args[0]);
        if (!obj.ok()) return obj;
        if (obj->is_object()) {
          auto f = obj->find(e.name);
          return f == obj->end() ? Undefined() : *f;
        }
        return Undefined();
      }
      case Expr::kIndex: {
        auto obj = Eval(*e.args[0]);
        if (!obj.ok()) return obj;
        auto idx = Eval(*e.args[1]);
        if (!idx.ok()) return idx;
        if (obj->is_object() && idx->is_string()) {
          auto f = obj->find(idx->get<std::string>());
          return f == obj->end() ? Undefined() : *f;
        }
        if ((obj->is_array() || obj->is_string()) && idx->is_number_integer()) {
          const int64_t n = obj->is_array() ? static_cast<int64_t>(obj->size())
                                            : static_cast<int64_t>(obj->get_ref<const std::string&>().size());
          int64_t i = idx->get<int64_t>();
          if (i < 0) i += n;
          if (i < 0 || i >= n) return Undefined();
          if (obj->is_array()) return (*obj)[static_cast<size_t>(i)];
          return json(std::string(1, obj->get_ref<const std::string&>()[static_cast<size_t>(i)]));
        }
        return Undefined();
      }
      case Expr::kSlice:
        return EvalSlice(e);
      case Expr::kCall:
        return EvalCall(e);
      case Expr::kFilter:
        return EvalFilter(e);
      case Expr::kTest: {
        auto v = Eval(*e.args[0]);
        if (!v.ok()) return v;
        bool r;
        if (e.name == "defined")
          r = !IsUndefined(*v);
        else if (e.name == "undefined")
          r = IsUndefined(*v);
        else if (e.name == "none")
          r = v->is_null();
        else if (e.name == "string")
          r = v->is_string();
        else if (e.name == "number")
          r = v->is_number();
        else if (e.name == "integer")
          r = v->is_number_integer();
        else if (e.name == "boolean")
          r = v->is_boolean();
        else if (e.name == "mapping")
          r = v->is_object();
        else if (e.name == "sequence" || e.name == "iterable")
          r = v->is_array() || v->is_string() || v->is_object();
        else if (e.name == "true")
          r = v->is_boolean() && v->get<bool>();
        else if (e.name == "false")
          r = v->is_boolean() && !v->get<bool>();
        else if (e.name == "even" || e.name == "odd") {
          if (!v->is_number_integer()) return TypeError("'even'/'odd' test on a non-integer");
          r = (v->get<int64_t>() % 2 == 0) == (e.name == "even");
        } else if (e.name == "equalto" || e.name == "eq") {
          if (e.args.size() < 2) return TypeError("test 'equalto' needs an argument");
          auto o = Eval(*e.args[1]);
          if (!o.ok()) return o;
          r = *v == *o;
        } else {
          return TypeError("unsupported test 'is " + e.name + "'");
        }
        return json(e.negate ? !r : r);
      }
      case Expr::kUnary: {
        auto v = Eval(*e.args[0]);
        if (!v.ok()) return v;
        if (e.name == "not") return json(!Truthy(*v));
        if (v->is_number_integer()) return json(-v->get<int64_t>());
        if (v->is_number()) return json(-v->get<double>());
        return TypeError("unary '-' on a non-number");
      }
      case Expr::kBinary:
        return EvalBinary(e);
      case Expr::kCond: {
        auto c = Eval(*e.args[0]);
        if (!c.ok()) return c;
        return Eval(*e.args[Truthy(*c) ? 1 : 2]);
      }
    }
    return Undefined();
  }

  absl::StatusOr<json> EvalSlice(const Expr& e) {
    auto obj = Eval(*e.args[0]);
    if (!obj.ok()) return obj;
    const bool is_str = obj->is_string();
    if (!obj->is_array() && !is_str) return TypeError("slicing a value that is not a list or string");
    const int64_t n =
        is_str ? static_cast<int64_t>(obj->get_ref<const std::string&>().size()) : static_cast<int64_t>(obj->size());
    auto bound = [&](const ExprP& x, int64_t dflt) -> absl::StatusOr<int64_t> {
      if (!x) return dflt;
      auto v = Eval(*x);
      if (!v.ok()) return v.status();
      if (!v->is_number_integer()) return TypeError("slice bounds must be integers");
      int64_t i = v->get<int64_t>();
      if (i < 0) i += n;
      return std::clamp<int64_t>(i, 0, n);
    };
    auto lo = bound(e.args[1], 0);
    if (!lo.ok()) return lo.status();
    auto hi = bound(e.args[2], n);
    if (!hi.ok()) return hi.status();
    if (is_str) return json(obj->get<std::string>().substr(*lo, std::max<int64_t>(0, *hi - *lo)));
    json out = json::array();
    for (int64_t i = *lo; i < *hi; ++i) out.push_back((*obj)[static_cast<size_t>(i)]);
    return out;
  }

  absl::StatusOr<std::vector<json>> EvalArgs(const Expr& e, size_t from) {
    std::vector<json> out;
    for (size_t k = from; k < e.args.size(); ++k) {
      auto v = Eval(*e.args[k]);
      if (!v.ok()) return v.status();
      out.push_back(*v);
    }
    return out;
  }

  static std::string StripChars(const std::string& s, const std::string& chars, bool left, bool right) {
    size_t b = 0, en = s.size();
    if (left)
      while (b < en && chars.find(s[b]) != std::string::npos) ++b;
    if (right)
      while (en > b && chars.find(s[en - 1]) != std::string::npos) --en;
    return s.substr(b, en - b);
  }

  absl::StatusOr<json> EvalCall(const Expr& e) {
    auto args = EvalArgs(e, 1);
    if (!args.ok()) return args.status();
    const Expr& callee = *e.args[0];
    if (callee.kind == Expr::kName) {
      if (callee.name == "raise_exception") {
        return absl::InvalidArgumentError(args->empty() ? "the chat template raised an exception" : ToText((*args)[0]));
      }
      if (callee.name == "range") {
        int64_t lo = 0, hi = 0, step = 1;
        if (args->size() == 1)
          hi = (*args)[0].get<int64_t>();
        else if (args->size() >= 2) {
          lo = (*args)[0].get<int64_t>();
          hi = (*args)[1].get<int64_t>();
        }
        if (args->size() == 3) step = (*args)[2].get<int64_t>();
        if (step == 0) return TypeError("range() step must not be 0");
        json out = json::array();
        for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) out.push_back(i);
        return out;
      }
      if (callee.name == "namespace") {
        json ns = json::object();
        for (size_t k = 0; k < args->size() && k < e.keys.size(); ++k) {
          if (!e.keys[k].empty()) ns[e.keys[k]] = (*args)[k];
        }
        return ns;
      }
      return TypeError("unknown function '" + callee.name + "'");
    }
    if (callee.kind != Expr::kAttr) return TypeError("only functions and string methods can be called");
    auto obj = Eval(*callee.args[0]);
    if (!obj.ok()) return obj;
    const std::string& m = callee.name;
    if (obj->is_string()) {
      const std::string s = obj->get<std::string>();
      const std::string ws = " \t\r\n\f\v";
      const std::string chars = args->empty() ? ws : ToText((*args)[0]);
      if (m == "strip") return json(StripChars(s, chars, true, true));
      if (m == "lstrip") return json(StripChars(s, chars, true, false));
      if (m == "rstrip") return json(StripChars(s, chars, false, true));
      if (m == "upper") return json(absl::AsciiStrToUpper(s));
      if (m == "lower") return json(absl::AsciiStrToLower(s));
      if (m == "startswith" && !args->empty()) return json(absl::StartsWith(s, ToText((*args)[0])));
      if (m == "endswith" && !args->empty()) return json(absl::EndsWith(s, ToText((*args)[0])));
      return TypeError("unsupported string method '" + m + "'");
    }
    if (obj->is_object() && (m == "items" || m == "keys" || m == "values")) {
      json out = json::array();
      for (auto it = obj->begin(); it != obj->end(); ++it) {
        if (m == "items")
          out.push_back(json::array({it.key(), it.value()}));
        else if (m == "keys")
          out.push_back(it.key());
        else
          out.push_back(it.value());
      }
      return out;
    }
    if (obj->is_object() && m == "get" && !args->empty()) {
      auto f = obj->find(ToText((*args)[0]));
      if (f != obj->end()) return *f;
      return args->size() > 1 ? (*args)[1] : json(nullptr);
    }
    return TypeError("unsupported method '" + m + "'");
  }

  absl::StatusOr<json> EvalFilter(const Expr& e) {
    auto v = Eval(*e.args[0]);
    if (!v.ok()) return v;
    auto args = EvalArgs(e, 1);
    if (!args.ok()) return args.status();
    const std::string& f = e.name;
    if (f == "trim") return json(StripChars(ToText(*v), " \t\r\n\f\v", true, true));
    if (f == "upper") return json(absl::AsciiStrToUpper(ToText(*v)));
    if (f == "lower") return json(absl::AsciiStrToLower(ToText(*v)));
    if (f == "string") return json(ToText(*v));
    if (f == "tojson") return json(v->dump());
    if (f == "length" || f == "count") {
      if (v->is_string()) return json(static_cast<int64_t>(v->get_ref<const std::string&>().size()));
      if (v->is_array() || v->is_object()) return json(static_cast<int64_t>(v->size()));
      return TypeError("'length' of a value that has none");
    }
    if (f == "default" || f == "d") {
      if (IsUndefined(*v)) return args->empty() ? json("") : (*args)[0];
      return v;
    }
    if (f == "first" || f == "last") {
      if (!v->is_array() || v->empty()) return Undefined();
      return f == "first" ? v->front() : v->back();
    }
    if (f == "join") {
      if (!v->is_array()) return TypeError("'join' of a value that is not a list");
      std::string sep = args->empty() ? "" : ToText((*args)[0]), out;
      for (size_t k = 0; k < v->size(); ++k) out += (k ? sep : "") + ToText((*v)[k]);
      return json(out);
    }
    if (f == "list") return v->is_array() ? *v : json::array();
    return TypeError("unsupported filter '" + f + "'");
  }

  absl::StatusOr<json> EvalBinary(const Expr& e) {
    const std::string& op = e.name;
    auto l = Eval(*e.args[0]);
    if (!l.ok()) return l;
    if (op == "and") return Truthy(*l) ? Eval(*e.args[1]) : l;
    if (op == "or") return Truthy(*l) ? l : Eval(*e.args[1]);
    auto r = Eval(*e.args[1]);
    if (!r.ok()) return r;
    if (op == "~") return json(ToText(*l) + ToText(*r));
    if (op == "==") return json(*l == *r);
    if (op == "!=") return json(*l != *r);
    if (op == "in" || op == "not in") {
      bool found = false;
      if (r->is_string())
        found = r->get<std::string>().find(ToText(*l)) != std::string::npos;
      else if (r->is_array())
        found = std::find(r->begin(), r->end(), *l) != r->end();
      else if (r->is_object())
        found = l->is_string() && r->contains(l->get<std::string>());
      return json(op == "in" ? found : !found);
    }
    if (op == "+") {
      if (l->is_string() && r->is_string()) return json(l->get<std::string>() + r->get<std::string>());
      if (l->is_array() && r->is_array()) {
        json out = *l;
        for (const auto& x : *r) out.push_back(x);
        return out;
      }
    }
    if (!l->is_number() || !r->is_number()) {
      return TypeError(absl::StrCat("operator '", op, "' on ", l->is_discarded() ? "undefined" : l->type_name(),
                                    " and ", r->is_discarded() ? "undefined" : r->type_name()));
    }
    const bool ints = l->is_number_integer() && r->is_number_integer();
    if (op == "<") return json(*l < *r);
    if (op == ">") return json(*l > *r);
    if (op == "<=") return json(*l <= *r);
    if (op == ">=") return json(*l >= *r);
    if (ints) {
      const int64_t a = l->get<int64_t>(), b = r->get<int64_t>();
      if (op == "+") return json(a + b);
      if (op == "-") return json(a - b);
      if (op == "*") return json(a * b);
      if ((op == "%" || op == "//") && b == 0) return TypeError("division by zero");
      if (op == "%") return json(((a % b) + b) % b);
      if (op == "//") return json(a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0));
    }
    const double a = l->get<double>(), b = r->get<double>();
    if (op == "+") return json(a + b);
    if (op == "-") return json(a - b);
    if (op == "*") return json(a * b);
    if (b == 0) return TypeError("division by zero");
    if (op == "/") return json(a / b);
    if (op == "//") return json(std::floor(a / b));
    if (op == "%") return json(a - b * std::floor(a / b));
    return TypeError("unsupported operator '" + op + "'");
  }

  std::vector<json> scopes_;
};

}  // namespace
}  // namespace jinja

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(const std::string& source) {
  auto segs = jinja::Split(source);
  if (!segs.ok()) return segs.status();
  jinja::StmtParser p(*std::move(segs));
  auto root = p.ParseAll();
  if (!root.ok()) return root.status();
  ChatTemplate t;
  t.root_ = *std::move(root);
  return t;
}

absl::StatusOr<std::string> ChatTemplate::RenderJson(const json& variables) const {
  jinja::Renderer r(variables);
  std::string out;
  absl::Status s = r.Run(*root_, &out);
  if (!s.ok()) return s;
  return out;
}

absl::StatusOr<std::string> ChatTemplate::Render(const Inputs& in) const {
  json vars = json::object();
  json msgs = json::array();
  for (const ChatMessage& m : in.messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
  vars["messages"] = std::move(msgs);
  vars["bos_token"] = in.bos_token;
  vars["eos_token"] = in.eos_token;
  vars["add_generation_prompt"] = in.add_generation_prompt;
  return RenderJson(vars);
}

namespace {
std::string TokenString(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}
}  // namespace

absl::StatusOr<ModelChatTemplate> LoadChatTemplate(const std::string& model_dir) {
  const std::string path = (std::filesystem::path(model_dir) / "tokenizer_config.json").string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(
        absl::StrCat("the model has no chat template (no tokenizer_config.json beside its weights); "
                     "use /v1/completions with a plain prompt"));
  }
  auto text = ReadFile(path);
  if (!text.ok()) return text.status();
  json cfg = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (cfg.is_discarded() || !cfg.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a JSON object"));
  }
  std::string source;
  if (cfg.contains("chat_template")) {
    const json& ct = cfg["chat_template"];
    if (ct.is_string()) {
      source = ct.get<std::string>();
    } else if (ct.is_array()) {
      for (const json& entry : ct) {
        if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
            entry["template"].is_string()) {
          source = entry["template"].get<std::string>();
        }
      }
    }
  }
  if (source.empty()) {
    return absl::NotFoundError(
        "the model has no chat template (its tokenizer_config.json has no \"chat_template\"); "
        "use /v1/completions with a plain prompt");
  }
  auto t = ChatTemplate::Parse(source);
  if (!t.ok()) return t.status();
  ModelChatTemplate out{*std::move(t), cfg.contains("bos_token") ? TokenString(cfg["bos_token"]) : "",
                        cfg.contains("eos_token") ? TokenString(cfg["eos_token"]) : ""};
  return out;
}

}  // namespace slq::http
