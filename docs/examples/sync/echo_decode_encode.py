import os  # added for the tests
import trio_socketserver.sync as socketserver

class EchoRequestHandler(socketserver.BaseRequestHandler):
  def handle(self):
    # Read data from the client
    data = self.request.recv(1024).decode()

    # Echo the data back to the client
    self.request.sendall(data.encode())

if __name__ == "__main__":
  # Create a TCP server on port 8000
  server = socketserver.TCPServer(("localhost", int(os.environ.get("EXAMPLE_PORT", "8000"))), EchoRequestHandler)  # port from the environment

  # Start the server
  print("listening on", server.server_address, flush=True)  # added for the tests
  server.serve_forever()
